"""The row schemas: one canonical shape per kind of row, exported to Parquet/JSON.

`Problem` is the problem row every source produces, procedural or loaded from files: the
pipeline cannot tell them apart. Its `id` is a content hash, so the same problem gets the same id
whoever made it, and train/held-out splits can be checked for overlap by id alone.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import pyarrow as pa

PROBLEM_FIELDS = ("id", "source", "task", "question", "answer", "tests", "meta", "difficulty", "split")


def problem_id(task: str, question: str, answer: str, meta: Mapping[str, Any]) -> str:
    """Stable content hash of a problem: same task, question, gold and meta give the same id."""
    payload = json.dumps([task, question, answer, meta], sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:20]


@dataclass(frozen=True)
class Problem:
    source: str
    """Where it came from: "procedural:addition", a file path, a dataset name."""
    task: str
    """Task kind; names the verifier that judges it (verifiers registry)."""
    question: str
    """The problem text shown to the model."""
    answer: str
    """Gold answer as text ("" where the task has none, e.g. code judged by tests)."""
    tests: tuple[Any, ...] = ()
    """Code problems only: the test cases the code verifier runs."""
    meta: dict[str, Any] = field(default_factory=dict)
    """Task-specific facts the verifier needs (operands, numbers, ciphertext, ...); JSON-able."""
    difficulty: int | None = None
    """Task-specific size (digits, words, ...); None when unknown."""
    split: str = "train"
    """Which split the problem belongs to ("train", "heldout", ...)."""
    id: str = field(default="", compare=False)
    """Content hash of task + question + answer + meta; computed, never chosen."""

    def __post_init__(self):
        for name in ("source", "task", "question", "split"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value.strip():
                raise ValueError(f"{name}: must be a non-empty string, got {value!r}")
        if not isinstance(self.answer, str):
            raise ValueError(f"answer: must be a string, got {type(self.answer).__name__}")
        if isinstance(self.tests, (str, bytes)) or not isinstance(self.tests, (list, tuple)):
            raise ValueError(f"tests: must be a list, got {type(self.tests).__name__}")
        object.__setattr__(self, "tests", tuple(self.tests))
        if not isinstance(self.meta, Mapping):
            raise ValueError(f"meta: must be a mapping, got {type(self.meta).__name__}")
        object.__setattr__(self, "meta", dict(self.meta))
        if self.difficulty is not None and (isinstance(self.difficulty, bool) or not isinstance(self.difficulty, int)):
            raise ValueError(f"difficulty: must be an int or None, got {self.difficulty!r}")
        try:
            json.dumps([self.meta, list(self.tests)])
        except (TypeError, ValueError) as e:
            raise ValueError(f"meta/tests: must be JSON-serialisable ({e})") from None
        computed = problem_id(self.task, self.question, self.answer, self.meta)
        if self.id and self.id != computed:
            raise ValueError(f"id: {self.id!r} does not match the content hash {computed!r} (edited row?)")
        object.__setattr__(self, "id", computed)

    def to_dict(self) -> dict[str, Any]:
        """The plain mapping verifiers take (tests as a list, meta as a dict)."""
        return {
            "id": self.id, "source": self.source, "task": self.task, "question": self.question,
            "answer": self.answer, "tests": list(self.tests), "meta": dict(self.meta),
            "difficulty": self.difficulty, "split": self.split,
        }

    def to_row(self) -> dict[str, Any]:
        """Parquet/JSON-friendly row: flat scalar columns, meta and tests as JSON strings."""
        row = self.to_dict()
        row["tests"] = json.dumps(row["tests"], sort_keys=True)
        row["meta"] = json.dumps(row["meta"], sort_keys=True)
        return row

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Problem:
        """Inverse of `to_row` (also accepts meta/tests already decoded). Malformed rows raise
        ValueError naming the field and why."""
        if not isinstance(row, Mapping):
            raise ValueError(f"row: must be a mapping, got {type(row).__name__}")
        for name in ("source", "task", "question", "answer"):
            if name not in row or row[name] is None:
                raise ValueError(f"{name}: missing from the problem row")
        unknown = set(row) - set(PROBLEM_FIELDS)
        if unknown:
            raise ValueError(f"row: unknown fields {sorted(unknown)}; expected {list(PROBLEM_FIELDS)}")
        return cls(
            source=row["source"], task=row["task"], question=row["question"], answer=row["answer"],
            tests=_decoded(row, "tests", list), meta=_decoded(row, "meta", dict),
            difficulty=_difficulty(row.get("difficulty")), split=row.get("split") or "train", id=row.get("id") or "",
        )


def _difficulty(value: Any) -> Any:
    # Parquet readers hand back numpy ints, and pandas turns a missing int into NaN.
    if isinstance(value, float) and value != value:
        return None
    if value is not None and not isinstance(value, (bool, int)) and hasattr(value, "__index__"):
        return int(value.__index__())
    return value


def _decoded(row: Mapping[str, Any], name: str, kind: type) -> Any:
    return json_field(row.get(name), kind, name)


def json_field(value: Any, kind: type, name: str) -> Any:
    """A JSON-carrying column (meta, tests) as `kind`: decoded when it is a string, empty when
    missing; ValueError naming the field otherwise."""
    if value is None or value == "":
        return kind()
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as e:
            raise ValueError(f"{name}: not valid JSON ({e.msg} at char {e.pos})") from None
    if not isinstance(value, kind):
        raise ValueError(f"{name}: must decode to a {kind.__name__}, got {type(value).__name__}")
    return value


# ---- rows a round writes -----------------------------------------------------------------------
# One schema per kind, fixed, so every shard of a kind loads together with any Parquet reader.

_MESSAGES = pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())]))
_MODEL = pa.struct([("model_id", pa.string()), ("model_revision", pa.string()), ("engine", pa.string())])
_VERDICT = pa.struct([("correct", pa.bool_()), ("verifier", pa.string()), ("version", pa.string()),
                      ("reason", pa.string()), ("extracted", pa.string()), ("first_wrong_step", pa.int64())])
_CRITIC = pa.struct([("correct", pa.bool_()), ("first_wrong_step", pa.int64()), ("critique", pa.string()),
                     ("score", pa.float64())])
"""A critic's verdict on a trace (selfplay.prompts.CriticVerdict); `score` is its probability that the
trace is correct, from the log-probabilities at its verdict word (selfplay.prompts.critic_score)."""
_SAMPLING = pa.struct([("temperature", pa.float64()), ("top_p", pa.float64()), ("max_tokens", pa.int64()),
                       ("seed", pa.int64())])

TRACE_SCHEMA = pa.schema([
    ("id", pa.string()), ("problem_id", pa.string()), ("source", pa.string()), ("task", pa.string()),
    ("difficulty", pa.int64()), ("question", pa.string()), ("messages", _MESSAGES), ("reasoning", pa.string()),
    ("answer", pa.string()), ("gold", pa.string()), ("verdict", _VERDICT), ("critic", _CRITIC),
    ("revision", pa.int64()), ("strategy", pa.string()), ("model", _MODEL), ("sampling", _SAMPLING),
    ("round", pa.int64()), ("tokens", pa.int64()), ("finish_reason", pa.string()),
    ("problem_pass_rate", pa.float64()), ("config_hash", pa.string()), ("reject_reason", pa.string()),
])
"""`sft/` (accepted, reject_reason "") and `rejected/` rows: the canonical trace row."""

CRITIC_SCHEMA = pa.schema([
    ("id", pa.string()), ("problem_id", pa.string()), ("task", pa.string()), ("messages", _MESSAGES),
    ("trace", pa.string()), ("critic_output", pa.string()), ("critic", _CRITIC), ("label_correct", pa.bool_()),
    ("label_first_wrong_step", pa.int64()), ("agree", pa.bool_()), ("model", _MODEL), ("round", pa.int64()),
    ("config_hash", pa.string()),
])
"""`critic/` rows: the critic's judgement beside the verifier's label. `messages` is the critic
prompt with the verifier's label as the target answer: the critic's own training data."""

PROBLEM_STATS_SCHEMA = pa.schema([
    ("problem_id", pa.string()), ("task", pa.string()), ("source", pa.string()), ("difficulty", pa.int64()),
    ("split", pa.string()), ("status", pa.string()), ("samples", pa.int64()), ("verified", pa.int64()),
    ("accepted", pa.int64()), ("pass_rate", pa.float64()), ("revisions", pa.int64()),
    ("revisions_accepted", pa.int64()), ("revisions_verified", pa.int64()), ("revision_tokens", pa.int64()),
    ("tokens", pa.int64()), ("critic_judged", pa.int64()), ("duplicates", pa.int64()),
])
"""`problems/` rows: one per finished problem (resume skips these ids). `tokens` counts every solver
token of the problem, `revision_tokens` those of its revisions (critique-guided retries); so the
revisions and the fresh samples can be compared at equal generated tokens (selfplay.stats)."""


def trace_id(problem_id: str, text: str) -> str:
    return hashlib.sha256(f"{problem_id}\n{text}".encode()).hexdigest()[:20]

PAIR_SCHEMA = pa.schema([
    ("id", pa.string()), ("problem_id", pa.string()), ("task", pa.string()), ("prompt", _MESSAGES),
    ("chosen", _MESSAGES), ("rejected", _MESSAGES), ("chosen_id", pa.string()), ("rejected_id", pa.string()),
    ("rejected_reason", pa.string()), ("rejected_finish_reason", pa.string()), ("round", pa.int64()),
    ("config_hash", pa.string()),
])
"""`pairs/` rows: TRL's conversational preference format (`prompt` as user messages, `chosen` and
`rejected` as one assistant message each) plus where each side came from and why the rejected
trace failed (selfplay.products.pair_rows has the pairing rule)."""

PRM_SCHEMA = pa.schema([
    ("id", pa.string()), ("problem_id", pa.string()), ("task", pa.string()), ("trace_id", pa.string()),
    ("prompt", pa.string()), ("completions", pa.list_(pa.string())), ("labels", pa.list_(pa.bool_())),
    ("soft_labels", pa.list_(pa.float64())), ("label_source", pa.string()), ("rollouts", pa.int64()),
    ("rollout_tokens", pa.int64()), ("round", pa.int64()), ("config_hash", pa.string()),
])
"""`prm/` rows: TRL's stepwise-supervision format (`prompt`, `completions` = the trace's steps,
`labels` = one bool per step) plus `soft_labels` (the share of Monte-Carlo rollouts from each step
that reached a verified answer; 1.0/0.0 for exact labels), `label_source` ("step_checker" or
"monte_carlo") and what the rollouts cost (selfplay.products.prm_rows has the labelling rule)."""


# ---- rows to Arrow -----------------------------------------------------------------------------


class RowSchemaError(ValueError):
    """A row does not fit its kind's schema; the message names the kind, problem and field."""


class FixedSchema:
    """A kind's schema and the checks a row needs, worked out once: Arrow would drop an unknown
    field and null a missing one silently, so both are errors here (hashing Arrow types on every
    row would cost more than converting it)."""

    def __init__(self, schema: pa.Schema):
        self.schema, self.names = schema, frozenset(schema.names)
        checks = [(f.name, f.nullable, _key_checker(f.type)) for f in schema]
        self.checks = [(name, nullable, check) for name, nullable, check in checks if not nullable or check]
        # pyarrow imports pandas at its first conversion (about 0.2 s): here, before a round starts,
        # rather than inside its event loop at the first finished problem.
        pa.Table.from_pylist([], schema=schema)

    def table(self, rows: list[Mapping[str, Any]], where: str) -> pa.Table:
        """The rows (mappings) as Arrow; a bad value gets an error that starts with `where` (the
        kind and problem) and names the field."""
        unknown = list(dict.fromkeys(n for row in rows for n in row if n not in self.names))
        if unknown:
            raise RowSchemaError(f"{where}: unknown field(s) {unknown}; the schema has {self.schema.names}")
        for name, nullable, check in self.checks:
            if not nullable and any(row.get(name) is None for row in rows):
                raise RowSchemaError(f"{where}: field {name!r} is required but missing or None")
            extra = check and next(filter(None, (check(row.get(name)) for row in rows)), None)
            if extra:
                raise RowSchemaError(f"{where}: {name + extra!r} is not in the schema ({name}: {self.schema.field(name).type})")
        try:
            return pa.Table.from_pylist(rows, schema=self.schema)  # one fast call; column by column to name a failure
        except (pa.ArrowException, TypeError, ValueError, OverflowError):
            pass
        arrays = []
        for f in self.schema:
            try:
                arrays.append(pa.array([row.get(f.name) for row in rows], type=f.type))
            except (pa.ArrowException, TypeError, ValueError, OverflowError) as e:
                raise RowSchemaError(f"{where}: field {f.name!r} (expected {f.type}): {e}") from e
        return pa.Table.from_arrays(arrays, schema=self.schema)


def _key_checker(t: pa.DataType) -> Callable[[Any], str | None] | None:
    """A function giving the path (".a[0].b") of the first dict key in a value that type `t`
    has no field for; None when `t` holds no struct, so there is nothing to check."""
    if pa.types.is_struct(t):
        children = {t.field(i).name: _key_checker(t.field(i).type) for i in range(t.num_fields)}

        def check_struct(value: Any) -> str | None:
            if not isinstance(value, Mapping):
                return None
            for key, item in value.items():
                if key not in children:
                    return f".{key}"
                found = children[key] and children[key](item)
                if found:
                    return f".{key}{found}"
            return None

        return check_struct
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        item_check = _key_checker(t.value_type)
        if item_check is None:
            return None

        def check_list(value: Any) -> str | None:
            if isinstance(value, (list, tuple)):
                for i, item in enumerate(value):
                    found = item_check(item)
                    if found:
                        return f"[{i}]{found}"
            return None

        return check_list
    return None
