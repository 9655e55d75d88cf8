"""Column arithmetic: multi-digit addition and n-digit x 1-digit multiplication.

The step format belongs to verifiers.steps (`reference_steps` writes it, `check_steps` checks it);
this module only draws operands and asks that module for the trace.
"""

from __future__ import annotations

import random
from typing import Any, Mapping

from selfplay.tasks.base import Draw, Family, Reference
from verifiers.steps import ANSWER_PREFIX, reference_steps


def _number(rng: random.Random, digits: int) -> int:
    """A number with exactly `digits` digits (1 digit includes 0)."""
    if digits == 1:
        return rng.randint(0, 9)
    return rng.randint(10 ** (digits - 1), 10**digits - 1)


def draw_addition(rng: random.Random, difficulty: int) -> Draw:
    # The longer operand has `difficulty` digits; the other any length up to it, on either side,
    # so the model sees ragged columns as well as even ones.
    a = _number(rng, difficulty)
    b = _number(rng, rng.randint(1, difficulty))
    if rng.random() < 0.5:
        a, b = b, a
    return Draw(f"{a}+{b}=?", str(a + b), {"operands": [a, b]})


def draw_multiplication(rng: random.Random, difficulty: int) -> Draw:
    a = _number(rng, difficulty)
    b = rng.randint(0, 9)
    return Draw(f"{a}*{b}=?", str(a * b), {"operands": [a, b]})


def _column_solver(task: str):
    def solve(meta: Mapping[str, Any]) -> Reference:
        lines = reference_steps(task, meta["operands"])
        return Reference(tuple(lines[:-1]), lines[-1].removeprefix(ANSWER_PREFIX))

    return solve


ADDITION = Family(
    name="addition", task="addition", difficulty="digits of the longer operand",
    min_difficulty=1, max_difficulty=40, draw=draw_addition, solve=_column_solver("addition"),
)
MULTIPLICATION = Family(
    name="multiplication", task="multiplication", difficulty="digits of the first operand (second is 0-9)",
    min_difficulty=1, max_difficulty=40, draw=draw_multiplication, solve=_column_solver("multiplication"),
)
