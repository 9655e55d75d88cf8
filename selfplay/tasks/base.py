"""What a procedural task family is: a problem drawer and a reference solver.

A family draws a problem from (random stream, difficulty) and writes a reference step-by-step
solution for any problem of its kind (from the problem's meta alone, so it works on problems
loaded from files too). Reference solutions are used only to bootstrap the reference model.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from selfplay.prompts import format_trace


@dataclass(frozen=True)
class Draw:
    """One freshly drawn problem, before it becomes a `Problem` row."""

    question: str
    answer: str
    meta: dict[str, Any]


@dataclass(frozen=True)
class Reference:
    """A reference solution: step lines and the final answer."""

    steps: tuple[str, ...]
    answer: str

    def trace(self) -> str:
        """The solution in the trace format the solver learns (selfplay.prompts.format_trace)."""
        return format_trace(list(self.steps), self.answer)


@dataclass(frozen=True)
class Family:
    name: str
    """Family name, as given to `make_problems`."""
    task: str
    """Verifier registry name judging its problems (the Problem's `task`)."""
    difficulty: str
    """What the difficulty number means for this family, for humans."""
    min_difficulty: int
    """Smallest valid difficulty."""
    max_difficulty: int
    """Largest valid difficulty (beyond it questions outgrow the reference model's context)."""
    draw: Callable[[random.Random, int], Draw]
    """Draws one problem at a difficulty from a random stream."""
    solve: Callable[[Mapping[str, Any]], Reference]
    """Writes the reference solution from a problem's meta."""
    accept: Callable[[Draw, int], bool] | None = None
    """Optional costly filter (e.g. a difficulty band that needs a solver), applied only to draws
    that already landed in the wanted split, so rejected splits cost nothing."""

    def check_difficulty(self, difficulty: int) -> None:
        if isinstance(difficulty, bool) or not isinstance(difficulty, int):
            raise ValueError(f"difficulty must be an int, got {difficulty!r}")
        if not self.min_difficulty <= difficulty <= self.max_difficulty:
            raise ValueError(
                f"{self.name}: difficulty {difficulty} out of range "
                f"[{self.min_difficulty}, {self.max_difficulty}] ({self.difficulty})"
            )
