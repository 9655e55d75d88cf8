"""Problem sources: procedural task families, local JSONL/Parquet files, saved HF dataset
directories, hub datasets. Every source yields the same `Problem` rows, one at a time (the driver
never holds a whole source in memory); a row that cannot become a Problem is yielded as a `BadRow`
with its reason, so the run records it and goes on.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping

from selfplay.records import Problem, json_field

KINDS = ("tasks", "file", "hf_dir", "hub")
COLUMN_ROLES = ("id", "question", "answer", "tests", "task", "meta", "difficulty")


@dataclass(frozen=True)
class TaskSpec:
    """One procedural task family in a source."""

    family: str
    """A family from selfplay.tasks.FAMILIES ("addition", "game24", ...)."""
    n: int
    """How many distinct problems to draw."""
    difficulty: int = 1
    """The family's size knob (digits, words, ...)."""

    def __post_init__(self):
        if self.n < 0:
            raise ValueError(f"n must be >= 0, got {self.n}")


@dataclass(frozen=True)
class SourceConfig:
    """Where a round's problems come from (the Hydra `source` group)."""

    kind: str = "tasks"
    """"tasks" (procedural families), "file" (.jsonl/.json/.parquet file, directory or glob),
    "hf_dir" (a `datasets` directory saved with save_to_disk), "hub" (a hub dataset id)."""
    tasks: list[TaskSpec] = field(default_factory=list)
    """kind=tasks: the families, sizes and difficulties."""
    path: str | None = None
    """kind=file/hf_dir: the path; kind=hub: the dataset id."""
    split: str = "train"
    """The split to draw (procedural families keep held-out problems out of "train")."""
    columns: dict[str, str] = field(default_factory=dict)
    """Column mapping for files and datasets: role -> column name, roles being id, question,
    answer, tests, task, meta, difficulty. Unmapped roles use the role's own name."""
    task: str | None = None
    """Task kind (verifier) for rows without a task column, e.g. "math" or "code"."""
    seed: int = 0
    """Seed of the procedural streams."""
    limit: int | None = None
    """Take at most this many rows (after skipping none): for quick runs."""

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)}; got {self.kind!r}")
        if self.kind == "tasks" and not self.tasks:
            raise ValueError("kind=tasks needs at least one entry in `tasks`")
        if self.kind != "tasks" and not self.path:
            raise ValueError(f"kind={self.kind} needs `path`")
        bad = set(self.columns) - set(COLUMN_ROLES)
        if bad:
            raise ValueError(f"columns: unknown roles {sorted(bad)}; roles are {', '.join(COLUMN_ROLES)}")


@dataclass(frozen=True)
class BadRow:
    """A source row that is not a usable problem, with where it was and why."""

    where: str
    reason: str
    row: str
    """The raw row, truncated, for errors.jsonl."""

    def to_row(self) -> dict[str, str]:
        return {"where": self.where, "reason": self.reason, "row": self.row}


def iter_problems(cfg: SourceConfig) -> Iterator[Problem | BadRow]:
    rows = {"tasks": _procedural, "file": _files, "hf_dir": _hf_dir, "hub": _hub}[cfg.kind](cfg)
    for i, item in enumerate(rows):
        if cfg.limit is not None and i >= cfg.limit:
            return
        yield item


def _procedural(cfg: SourceConfig) -> Iterator[Problem]:
    from selfplay.tasks import make_problems

    for spec in cfg.tasks:
        yield from make_problems(spec.family, spec.n, cfg.seed, spec.difficulty, cfg.split)


def _files(cfg: SourceConfig) -> Iterator[Problem | BadRow]:
    paths = _expand(cfg.path)
    if not paths:
        raise FileNotFoundError(f"source.path {cfg.path!r} matches no .jsonl, .json or .parquet file")
    for path in paths:
        for index, raw in _read_rows(path):
            yield _to_problem(raw, cfg, f"{path}:{index}")


def _expand(spec: str) -> list[Path]:
    p = Path(spec).expanduser()
    if p.is_dir():
        found = [f for f in sorted(p.rglob("*")) if f.suffix in (".jsonl", ".json", ".parquet")]
    elif any(ch in spec for ch in "*?["):
        found = sorted(Path().glob(spec)) if not p.is_absolute() else sorted(Path("/").glob(spec.lstrip("/")))
    else:
        found = [p] if p.exists() else []
    return found


def _read_rows(path: Path) -> Iterator[tuple[int, Any]]:
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        index = 0
        for batch in pq.ParquetFile(path).iter_batches(batch_size=1024):
            for row in batch.to_pylist():
                yield index, row
                index += 1
    elif path.suffix == ".json":
        data = json.loads(path.read_text())
        yield from enumerate(data if isinstance(data, list) else [data])
    else:
        with path.open("rb") as f:
            for index, line in enumerate(f):
                if not line.strip():
                    continue
                try:
                    yield index, json.loads(line)
                except (json.JSONDecodeError, UnicodeDecodeError) as e:
                    yield index, _Unparsable(f"not valid JSON: {e}", line[:500].decode("utf-8", "replace"))


@dataclass(frozen=True)
class _Unparsable:
    reason: str
    text: str


def _hf_dir(cfg: SourceConfig) -> Iterator[Problem | BadRow]:
    from datasets import DatasetDict, load_from_disk

    data = load_from_disk(cfg.path)
    if isinstance(data, DatasetDict):
        if cfg.split not in data:
            raise ValueError(f"{cfg.path} has splits {list(data)}, not {cfg.split!r} (set source.split)")
        data = data[cfg.split]
    for index, raw in enumerate(data):
        yield _to_problem(raw, cfg, f"{cfg.path}:{index}")


def _hub(cfg: SourceConfig) -> Iterator[Problem | BadRow]:
    from datasets import load_dataset

    for index, raw in enumerate(load_dataset(cfg.path, split=cfg.split, streaming=True)):
        yield _to_problem(raw, cfg, f"{cfg.path}:{index}")


def _to_problem(raw: Any, cfg: SourceConfig, where: str) -> Problem | BadRow:
    if isinstance(raw, _Unparsable):
        return BadRow(where, raw.reason, raw.text)
    if not isinstance(raw, Mapping):
        return BadRow(where, f"row is a {type(raw).__name__}, not an object", repr(raw)[:500])
    col = {role: cfg.columns.get(role, role) for role in COLUMN_ROLES}
    try:
        meta = json_field(raw.get(col["meta"]), dict, "meta")
        if raw.get(col["id"]) is not None:
            meta = {**meta, "source_id": str(raw[col["id"]])}
        task = raw.get(col["task"]) or cfg.task
        if not task:
            raise ValueError(f"no task: the row has no '{col['task']}' column and source.task is not set")
        question = raw.get(col["question"])
        if not isinstance(question, str) or not question.strip():
            raise ValueError(f"question: column '{col['question']}' is missing or empty")
        answer = raw.get(col["answer"])
        answer = "" if answer is None else str(answer) if isinstance(answer, (int, float)) else answer
        return Problem(
            source=str(cfg.path), task=str(task), question=question, answer=answer,
            tests=json_field(raw.get(col["tests"]), list, "tests"), meta=meta,
            difficulty=raw.get(col["difficulty"]), split=cfg.split,
        )
    except (ValueError, TypeError) as e:
        return BadRow(where, str(e), _preview(raw))


def _preview(raw: Mapping[str, Any]) -> str:
    try:
        return json.dumps(raw, default=str)[:500]
    except (TypeError, ValueError):
        return repr(raw)[:500]
