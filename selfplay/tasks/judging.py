"""Judging examples for the critic: reference traces and planted-error traces, labelled by the
step checker (verifiers.steps.check_steps), never by the rewriter that made them.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Iterable

from selfplay.prompts import critic_messages, format_critic
from selfplay.records import Problem
from selfplay.tasks.planted_errors import plant_error
from verifiers.steps import STEP_TASKS, check_steps


@dataclass(frozen=True)
class JudgedTrace:
    problem: Problem
    trace: str
    """A solver trace in the trace format (verifiers.steps.format_trace)."""
    first_wrong_step: int | None
    """Ground truth from the step checker: 0-based first wrong step, None when all is right
    (len(steps) = the answer line is the first wrong one)."""
    reason: str
    """The step checker's reason."""

    @property
    def correct(self) -> bool:
        return self.first_wrong_step is None

    def messages(self) -> list[dict[str, str]]:
        """The critic prompt for this trace."""
        return critic_messages(self.problem.question, self.trace)

    def verdict(self) -> str:
        """What a perfect critic answers (the training target)."""
        return format_critic(self.correct, self.first_wrong_step)


def label(problem: Problem, trace: str) -> JudgedTrace:
    """Judge `trace` with the step checker."""
    if problem.task not in STEP_TASKS:
        raise ValueError(f"no step checker for task {problem.task!r}; judging needs one of {STEP_TASKS}")
    first_wrong, reason = check_steps(problem.task, problem.meta["operands"], trace)
    return JudgedTrace(problem, trace, first_wrong, reason)


def judged_traces(
    problems: Iterable[Problem], rng: random.Random, *, wrong_share: float = 0.5, lucky_share: float = 0.25
) -> list[JudgedTrace]:
    """One labelled trace per problem: the reference, or (with probability `wrong_share`) a
    planted error; `lucky_share` of the planted errors keep the gold answer."""
    from selfplay.tasks import reference_solution

    if not 0 <= wrong_share <= 1 or not 0 <= lucky_share <= 1:
        raise ValueError(f"wrong_share and lucky_share must be in [0, 1], got {wrong_share}, {lucky_share}")
    out = []
    for problem in problems:
        reference = reference_solution(problem)
        if rng.random() < wrong_share:
            reference = plant_error(problem.task, reference, rng, keep_answer=rng.random() < lucky_share)
        out.append(label(problem, reference.trace()))
    return out
