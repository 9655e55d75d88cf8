"""The verifier contract: a `Verdict` per judged completion, and a registry by task kind.

A *problem* is a plain mapping (a row from any source, procedural or loaded from a file):

    task      str   the task kind, picks the verifier ("math", "code", "addition", ...)
    question  str   the problem text shown to the model
    answer    str   the gold answer ("" where the task has none, e.g. code with tests)
    tests     list  code problems only: test cases (see verifiers.code)
    meta      dict  task-specific facts the verifier needs (numbers of a Game of 24, ...)

Verifiers never raise on model text and never hang: any completion gives a `Verdict` with a
reason. A malformed *problem* also gives a Verdict (correct=False, reason "bad problem: ...")
so one bad row cannot stop a run. A caller that kills slow checks (verifiers.pool) says when,
with `deadline`; a verifier whose work can take long (verifiers.code) reads `time_left` and
fits that work in, so its verdict says what ran out of time.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import asdict, dataclass
from typing import Any, Iterator, Mapping, Protocol


@dataclass(frozen=True)
class Verdict:
    correct: bool
    """Ground truth: the completion answers the problem correctly (and, where steps are
    checked, every step is right)."""
    reason: str
    """Why it was rejected, or which rule accepted it (e.g. "equal: numeric exact")."""
    extracted: str | None = None
    """The final answer found in the completion, None when none was found."""
    first_wrong_step: int | None = None
    """0-based index of the first wrong step, for step-checkable tasks; None if all steps
    are right or the task has no step checker."""
    verifier: str = ""
    """Name of the verifier that judged, e.g. "math"."""
    version: str = ""
    """Version of that verifier; goes into every row it judges."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Verifier(Protocol):
    name: str
    version: str

    def verify(self, problem: Mapping[str, Any], completion: str) -> Verdict: ...


_REGISTRY: dict[str, Verifier] = {}


def register(task: str, verifier: Verifier) -> None:
    """Make `verifier` judge problems whose `task` is `task`."""
    _REGISTRY[task] = verifier


def get(task: str) -> Verifier:
    _load_builtin()
    try:
        return _REGISTRY[task]
    except KeyError:
        known = ", ".join(sorted(_REGISTRY))
        raise KeyError(f"no verifier for task {task!r}; known tasks: {known}") from None


def tasks() -> list[str]:
    _load_builtin()
    return sorted(_REGISTRY)


def verify(problem: Mapping[str, Any], completion: str) -> Verdict:
    """Judge `completion` against `problem` with the verifier registered for its task."""
    task = problem.get("task") if isinstance(problem, Mapping) else None
    if not isinstance(task, str):
        return Verdict(False, "bad problem: no 'task' field")
    try:
        verifier = get(task)
    except KeyError as e:
        return Verdict(False, f"bad problem: {e.args[0]}")
    return verifier.verify(problem, completion)


_DEADLINE: ContextVar[float | None] = ContextVar("verifiers_deadline", default=None)


@contextmanager
def deadline(seconds: float) -> Iterator[None]:
    """Checks run inside this block are killed `seconds` from now by the caller (a VerifierPool
    worker holds one item under its timeout this way)."""
    token = _DEADLINE.set(time.monotonic() + seconds)
    try:
        yield
    finally:
        _DEADLINE.reset(token)


def time_left() -> float | None:
    """Seconds before the caller kills the check now running; None when no caller set a deadline."""
    at = _DEADLINE.get()
    return None if at is None else at - time.monotonic()


def _load_builtin() -> None:
    # The built-in verifiers register themselves on import; importing lazily keeps
    # `import verifiers` cheap and free of import cycles.
    from verifiers import builtin  # noqa: F401
