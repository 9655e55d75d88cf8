"""Problem sources: procedural task families, local JSONL/Parquet files, saved HF dataset
directories, hub datasets. Every source yields the same `Problem` rows, one at a time (the driver
never holds a whole source in memory); a row that cannot become a Problem is yielded as a `BadRow`
with its reason, so the run records it and goes on.

Rows of files and datasets are read by a layout (selfplay.layouts: generic, gsm8k, math, code),
which extracts the gold up front. A whole file that cannot be a source (empty, not JSON, not
UTF-8, without a column its layout needs) is refused at start by `check_source`, naming the file
and the column, before any model is loaded.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping

from selfplay.layouts import LAYOUTS, REQUIRED, ROLES, columns_for, to_fields
from selfplay.records import Problem
from verifiers.math import GOLD_SOURCES

KINDS = ("tasks", "file", "hf_dir", "hub")
SCAN_ROWS = 100
"""Rows of a JSON file `check_source` reads to learn its columns."""


class SourceError(ValueError):
    """A whole source cannot be read as configured (empty, unreadable, a column missing)."""


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
    layout: str = "generic"
    """How a row of a file or dataset becomes a problem (selfplay.layouts): "generic" (the
    `columns` mapping), "gsm8k", "math" (MATH and MATH-500), "code" (MBPP, APPS, HumanEval)."""
    columns: dict[str, str] = field(default_factory=dict)
    """Column mapping for files and datasets: role -> column name, roles being id, question,
    answer, solution, tests, task, meta, difficulty, entry_point, setup. An unmapped role is read
    from the layout's usual columns (generic: the role's own name)."""
    answer_from: str = "auto"
    """layout=generic: where the gold is in the answer column: "####" (the text after the last
    ####), "boxed" (the last \\boxed{}), "field" (the whole text), "auto" (#### if there, else a
    box if there, else the text). Applies to math rows, and to any row when "####" or "boxed"."""
    task: str | None = None
    """layout=generic: task kind (verifier) for rows without a task column, e.g. "math"."""
    seed: int = 0
    """Seed of the procedural streams."""
    limit: int | None = None
    """Take at most this many rows (after skipping none): for quick runs."""
    max_row_bytes: int = 2**20
    """A row bigger than this (as JSON) is a bad row, recorded with its size, not a problem."""
    only_ids: str | None = None
    """A text file of problem ids, one a line: only the rows whose problem id it lists become
    problems (bad rows are still yielded, so they are recorded). How the flywheel gives a round
    its draw, and an evaluation its held-out share, from a user's source."""

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)}; got {self.kind!r}")
        if self.kind == "tasks" and not self.tasks:
            raise ValueError("kind=tasks needs at least one entry in `tasks`")
        if self.kind != "tasks" and not self.path:
            raise ValueError(f"kind={self.kind} needs `path`")
        bad = set(self.columns) - set(ROLES)
        if bad:
            raise ValueError(f"columns: unknown roles {sorted(bad)}; roles are {', '.join(ROLES)}")
        if self.layout not in LAYOUTS:
            raise ValueError(f"layout must be one of {', '.join(LAYOUTS)}; got {self.layout!r}")
        if self.answer_from not in GOLD_SOURCES:
            raise ValueError(f"answer_from must be one of {', '.join(GOLD_SOURCES)}; got {self.answer_from!r}")
        if self.max_row_bytes < 1:
            raise ValueError(f"max_row_bytes must be >= 1, got {self.max_row_bytes}")


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
    check_source(cfg)
    keep = read_ids(cfg.only_ids) if cfg.only_ids else None
    rows = {"tasks": _procedural, "file": _files, "hf_dir": _hf_dir, "hub": _hub}[cfg.kind](cfg)
    for i, item in enumerate(rows):
        if cfg.limit is not None and i >= cfg.limit:
            return
        if keep is None or isinstance(item, BadRow) or item.id in keep:
            yield item


def read_ids(path: str) -> set[str]:
    """The problem ids listed in a file, one a line (source.only_ids)."""
    try:
        return set(Path(path).read_text().split())
    except OSError as e:
        raise SourceError(f"source.only_ids: cannot read {path} ({e.strerror or e})") from None


def _procedural(cfg: SourceConfig) -> Iterator[Problem]:
    from selfplay.tasks import make_problems

    for spec in cfg.tasks:
        yield from make_problems(spec.family, spec.n, cfg.seed, spec.difficulty, cfg.split)


def _files(cfg: SourceConfig) -> Iterator[Problem | BadRow]:
    for path in _expand(cfg.path):
        for index, raw in _read_rows(path, cfg.max_row_bytes):
            yield _to_problem(raw, cfg, f"{path}:{index}")


def check_source(cfg: SourceConfig) -> None:
    """Refuse, before any work, a source that cannot give a single problem: a path matching no
    file, an empty file, a file that is not JSON / UTF-8 / Parquet, or one without a column its
    layout needs (the error names the file and the column). Reads only the first rows."""
    if cfg.kind == "file":
        paths = _expand(cfg.path)
        if not paths:
            raise SourceError(f"source.path {cfg.path!r} matches no .jsonl, .json or .parquet file")
        for path in paths:
            _check_columns(cfg, str(path), _columns_of_file(path, cfg.max_row_bytes))
    elif cfg.kind == "hf_dir":
        _check_columns(cfg, cfg.path, _split(cfg).column_names)


def _columns_of_file(path: Path, max_row_bytes: int) -> set[str]:
    if path.stat().st_size == 0:
        raise SourceError(f"{path} is empty")
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        try:
            meta = pq.ParquetFile(path)
        except Exception as e:  # pyarrow raises several kinds for a file that is not Parquet
            raise SourceError(f"{path} is not a Parquet file ({e})") from None
        if meta.metadata.num_rows == 0:
            raise SourceError(f"{path} has no rows")
        return set(meta.schema_arrow.names)
    rows, first_problem = [], None
    for _, raw in _read_rows(path, max_row_bytes):
        if isinstance(raw, Mapping):
            rows.append(raw)
        elif first_problem is None:
            first_problem = raw.reason if isinstance(raw, _Unparsable) else f"a {type(raw).__name__}, not an object"
        if len(rows) >= SCAN_ROWS:
            break
    if not rows:
        raise SourceError(f"{path} has no rows" if first_problem is None else
                          f"{path}: no row is a JSON object (the first: {first_problem})")
    return {key for row in rows for key in row}


def _check_columns(cfg: SourceConfig, where: str, present) -> None:
    present = set(present)
    for group in REQUIRED[cfg.layout]:
        wanted = [c for role in group for c in columns_for(cfg.layout, role, cfg.columns)]
        if not present & set(wanted):
            names = " or ".join(f"'{c}'" for c in wanted)
            raise SourceError(f"{where} has no column {names} (the {cfg.layout} layout's {' / '.join(group)}; "
                              f"map one with source.columns.{group[0]}=...); its columns: {', '.join(sorted(present))}")


def _expand(spec: str) -> list[Path]:
    p = Path(spec).expanduser()
    if p.is_dir():
        found = [f for f in sorted(p.rglob("*")) if f.suffix in (".jsonl", ".json", ".parquet")]
    elif any(ch in spec for ch in "*?["):
        found = sorted(Path().glob(spec)) if not p.is_absolute() else sorted(Path("/").glob(spec.lstrip("/")))
    else:
        found = [p] if p.exists() else []
    return found


def _read_rows(path: Path, max_row_bytes: int) -> Iterator[tuple[int, Any]]:
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        index = 0
        for batch in pq.ParquetFile(path).iter_batches(batch_size=1024):
            for row in batch.to_pylist():
                yield index, row
                index += 1
    elif path.suffix == ".json":
        try:
            data = json.loads(path.read_bytes().decode("utf-8"))
        except UnicodeDecodeError as e:
            raise SourceError(f"{path} is not UTF-8 text ({e})") from None
        except json.JSONDecodeError as e:
            raise SourceError(f"{path} is not valid JSON ({e}); JSON lines go in a .jsonl file") from None
        yield from enumerate(data if isinstance(data, list) else [data])
    else:
        with path.open("rb") as f:
            for index, line in enumerate(f):
                if not line.strip():
                    continue
                preview = line[:500].decode("utf-8", "replace")
                if len(line) > max_row_bytes:
                    yield index, _Unparsable(f"row is {len(line):,} bytes; source.max_row_bytes is {max_row_bytes:,}", preview)
                    continue
                try:
                    text = line.decode("utf-8")
                except UnicodeDecodeError as e:
                    yield index, _Unparsable(f"not UTF-8 text: byte {line[e.start]:#04x} at {e.start}", preview)
                    continue
                try:
                    yield index, json.loads(text)
                except json.JSONDecodeError as e:
                    yield index, _Unparsable(f"not valid JSON: {e}", preview)


@dataclass(frozen=True)
class _Unparsable:
    reason: str
    text: str


def _split(cfg: SourceConfig):
    from datasets import DatasetDict, load_from_disk

    data = load_from_disk(cfg.path)
    if isinstance(data, DatasetDict):
        if cfg.split not in data:
            raise SourceError(f"{cfg.path} has splits {list(data)}, not {cfg.split!r} (set source.split)")
        data = data[cfg.split]
    if len(data) == 0:
        raise SourceError(f"{cfg.path} has no rows in split {cfg.split!r}")
    return data


def _hf_dir(cfg: SourceConfig) -> Iterator[Problem | BadRow]:
    for index, raw in enumerate(_split(cfg)):
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
    size = len(_preview(raw, limit=None).encode())
    if size > cfg.max_row_bytes:
        return BadRow(where, f"row is {size:,} bytes; source.max_row_bytes is {cfg.max_row_bytes:,}", _preview(raw))
    try:
        fields = to_fields(cfg.layout, raw, cfg.columns, cfg.task, cfg.answer_from)
        return Problem(source=str(cfg.path), split=cfg.split, **fields)
    except (ValueError, TypeError) as e:
        return BadRow(where, str(e), _preview(raw))


def _preview(raw: Mapping[str, Any], limit: int | None = 500) -> str:
    try:
        return json.dumps(raw, default=str)[:limit]
    except (TypeError, ValueError):
        return repr(raw)[:limit]
