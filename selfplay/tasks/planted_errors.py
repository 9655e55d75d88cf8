"""Planted errors for column-arithmetic traces: the negatives a critic learns to catch.

`plant_error` takes a correct reference solution and changes one step the way a careless solver
would (an arithmetic slip, a dropped or invented carry, a misread digit, a typo in the answer),
then continues *consistently* from the wrong value, so the rest of the trace looks right and the
error hides in one line. With `keep_answer` the final answer stays the gold one: a lucky trace
whose answer is right for the wrong reason, which a verifier that only reads answers would accept.

The step format is verifiers.steps' (read with `parse_steps`, written with `format_step`). The
rewriter does not label its output: the step checker (verifiers.steps.check_steps) does, so a
label is ground truth even when a planted change happens to be harmless.
"""

from __future__ import annotations

import random

from selfplay.tasks.base import Reference
from verifiers.steps import STEP_TASKS, column_result, format_step, parse_steps, spelled_result

ERROR_KINDS = ("slip", "carry", "digit", "answer")


def plant_error(task: str, reference: Reference, rng: random.Random, *, keep_answer: bool = False,
                kind: str | None = None) -> Reference:
    """A copy of `reference` (of an addition or multiplication problem, `task`) with one planted error."""
    columns = _parse(task, reference.steps)
    kind = kind or rng.choice(ERROR_KINDS)
    if kind not in ERROR_KINDS:
        raise ValueError(f"unknown error kind {kind!r}; known: {ERROR_KINDS}")
    if kind == "answer":
        return Reference(reference.steps, reference.answer if keep_answer else _typo(reference.answer, rng))
    at = rng.randrange(len(columns))
    if kind == "carry" and at == 0 and len(columns) > 1:
        at = rng.randrange(1, len(columns))
    x, y, carry, out = columns[at]
    if kind == "carry":
        carry = carry + rng.choice((-1, 1)) if carry else 1
    elif kind == "digit":
        x = rng.choice([d for d in range(10) if d != x])
    if kind == "slip":
        out = max(0, out + rng.choice((-2, -1, 1, 1, 2, 10, -10)))
        out = out if out != columns[at][3] else out + 1
    else:
        out = column_result(task, x, y, carry)
    columns[at] = (x, y, carry, out)
    # Carry the wrong value forward so later lines agree with it.
    for i in range(at + 1, len(columns)):
        nx, ny, _, _ = columns[i]
        ncarry = columns[i - 1][3] // 10
        columns[i] = (nx, ny, ncarry, column_result(task, nx, ny, ncarry))
    steps = tuple(format_step(task, column) for column in columns)
    return Reference(steps, reference.answer if keep_answer else spelled_result(columns))


def _parse(task: str, lines: tuple[str, ...]) -> list[tuple[int, int, int, int]]:
    if task not in STEP_TASKS:
        raise ValueError(f"no step format for task {task!r}; planted errors need one of {STEP_TASKS}")
    columns = []
    for line in lines:
        parsed = parse_steps(task, line)
        if len(parsed) != 1:
            raise ValueError(f"not a column-arithmetic step: {line!r}")
        columns.append(parsed[0])
    return columns


def _typo(answer: str, rng: random.Random) -> str:
    position = rng.randrange(len(answer))
    digit = rng.choice([d for d in "0123456789" if d != answer[position]])
    changed = answer[:position] + digit + answer[position + 1 :]
    return changed.lstrip("0") or ("1" if answer == "0" else "0")
