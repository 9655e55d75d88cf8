"""Planted errors for column-arithmetic traces: the negatives a critic learns to catch.

`plant_error` takes a correct reference solution and changes one step the way a careless solver
would (an arithmetic slip, a dropped or invented carry, a misread digit, a typo in the answer),
then continues *consistently* from the wrong value, so the rest of the trace looks right and the
error hides in one line. With `keep_answer` the final answer stays the gold one: a lucky trace
whose answer is right for the wrong reason, which a verifier that only reads answers would accept.

The rewriter does not label its output: the step checker (verifiers.steps.check_steps) does, so
a label is ground truth even when a planted change happens to be harmless.
"""

from __future__ import annotations

import random
import re

from selfplay.tasks.base import Reference

# One column step as verifiers.steps writes it: "{x}+{y}+{carry}={out}" or "{x}*{y}+{carry}={out}".
_STEP = re.compile(r"^(\d+)([+*])(\d+)\+(\d+)=(\d+)$")
ERROR_KINDS = ("slip", "carry", "digit", "answer")


def plant_error(reference: Reference, rng: random.Random, *, keep_answer: bool = False, kind: str | None = None) -> Reference:
    """A copy of `reference` (addition or multiplication) with one planted error."""
    columns = [_parse(line) for line in reference.steps]
    kind = kind or rng.choice(ERROR_KINDS)
    if kind not in ERROR_KINDS:
        raise ValueError(f"unknown error kind {kind!r}; known: {ERROR_KINDS}")
    if kind == "answer":
        return Reference(reference.steps, reference.answer if keep_answer else _typo(reference.answer, rng))
    at = rng.randrange(len(columns))
    if kind == "carry" and at == 0 and len(columns) > 1:
        at = rng.randrange(1, len(columns))
    x, op, y, carry, out = columns[at]
    if kind == "carry":
        carry = carry + rng.choice((-1, 1)) if carry else 1
    elif kind == "digit":
        x = rng.choice([d for d in range(10) if d != x])
    if kind == "slip":
        out = max(0, out + rng.choice((-2, -1, 1, 1, 2, 10, -10)))
        out = out if out != columns[at][4] else out + 1
    else:
        out = _apply(x, op, y, carry)
    columns[at] = (x, op, y, carry, out)
    # Carry the wrong value forward so later lines agree with it.
    for i in range(at + 1, len(columns)):
        nx, nop, ny, _, _ = columns[i]
        ncarry = columns[i - 1][4] // 10
        columns[i] = (nx, nop, ny, ncarry, _apply(nx, nop, ny, ncarry))
    steps = tuple(f"{x}{op}{y}+{c}={o}" for x, op, y, c, o in columns)
    return Reference(steps, reference.answer if keep_answer else _spelled(columns))


def _parse(line: str) -> tuple[int, str, int, int, int]:
    match = _STEP.match(line)
    if not match:
        raise ValueError(f"not a column-arithmetic step: {line!r}")
    x, op, y, carry, out = match.groups()
    return int(x), op, int(y), int(carry), int(out)


def _apply(x: int, op: str, y: int, carry: int) -> int:
    return (x + y if op == "+" else x * y) + carry


def _spelled(columns: list[tuple[int, str, int, int, int]]) -> str:
    """The number the steps spell: each column's last digit, then the final carry."""
    digits = "".join(str(c[4] % 10) for c in reversed(columns))
    return (str(columns[-1][4] // 10) + digits).lstrip("0") or "0"


def _typo(answer: str, rng: random.Random) -> str:
    position = rng.randrange(len(answer))
    digit = rng.choice([d for d in "0123456789" if d != answer[position]])
    changed = answer[:position] + digit + answer[position + 1 :]
    return changed.lstrip("0") or ("1" if answer == "0" else "0")
