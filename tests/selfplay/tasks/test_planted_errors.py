"""Planted errors: one wrong step, found by the step checker where it was planted."""

import random

import pytest

import verifiers
from selfplay.tasks import make_problems, reference_solution
from selfplay.tasks.planted_errors import ERROR_KINDS, plant_error
from verifiers.steps import check_steps


@pytest.mark.parametrize("task", ["addition", "multiplication"])
@pytest.mark.parametrize("kind", ERROR_KINDS)
def test_planted_error_is_caught_by_the_step_checker(task, kind):
    rng = random.Random(0)
    for problem in make_problems(task, 25, seed=1, difficulty=4):
        reference = reference_solution(problem)
        bad = plant_error(task, reference, rng, kind=kind)
        first_wrong, reason = check_steps(task, problem.meta["operands"], bad.trace())
        assert first_wrong is not None, (problem.question, bad.trace())
        assert bad.answer != problem.answer or bad.steps != reference.steps
        # Only one line differs from the reference before the error spreads through the carries.
        changed = [i for i, (a, b) in enumerate(zip(bad.steps, reference.steps)) if a != b]
        assert not changed or changed[0] == first_wrong
        assert not verifiers.verify(problem.to_dict(), bad.trace()).correct


@pytest.mark.parametrize("task", ["addition", "multiplication"])
def test_lucky_traces_keep_the_gold_answer_and_are_still_rejected(task):
    rng = random.Random(2)
    for problem in make_problems(task, 20, seed=2, difficulty=3):
        lucky = plant_error(task, reference_solution(problem), rng, keep_answer=True, kind="slip")
        assert lucky.answer == problem.answer
        verdict = verifiers.verify(problem.to_dict(), lucky.trace())
        assert not verdict.correct and verdict.reason.startswith("lucky:")


def test_unknown_kind_and_foreign_steps_are_refused():
    reference = reference_solution(make_problems("addition", 1, 0, 2)[0])
    with pytest.raises(ValueError, match="unknown error kind"):
        plant_error("addition", reference, random.Random(0), kind="typo")
    game = reference_solution(make_problems("game24", 1, 0, 1)[0])
    with pytest.raises(ValueError, match="not a column-arithmetic step"):
        plant_error("addition", game, random.Random(0), kind="slip")
    with pytest.raises(ValueError, match="no step format for task 'game24'"):
        plant_error("game24", game, random.Random(0), kind="slip")
    with pytest.raises(ValueError, match="not a column-arithmetic step"):
        plant_error("multiplication", reference, random.Random(0), kind="slip")
