"""The registry: every task resolves to a verifier that keeps the contract, bad problems get
reasons, and the package stays free of Ray, torch and selfplay."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import verifiers
from verifiers import Verdict

PUZZLE_AND_STEP_TASKS = {"game24", "countdown", "cipher", "letter_count", "compare", "choice", "addition", "multiplication"}
REPO = Path(__file__).resolve().parents[2]


def test_builtin_tasks_are_registered():
    assert PUZZLE_AND_STEP_TASKS <= set(verifiers.tasks())


@pytest.mark.parametrize("task", verifiers.tasks())
def test_every_task_resolves_to_a_named_versioned_verifier(task):
    verifier = verifiers.get(task)
    assert isinstance(verifier.name, str) and verifier.name
    assert isinstance(verifier.version, str) and verifier.version
    assert callable(verifier.verify)


@pytest.mark.parametrize("task", verifiers.tasks())
def test_every_task_rejects_a_problem_without_meta_or_gold(task):
    verdict = verifiers.verify({"task": task}, "Answer: 42")
    assert isinstance(verdict, Verdict)
    assert not verdict.correct
    assert verdict.reason.startswith("bad problem"), verdict.reason


@pytest.mark.parametrize(
    "problem, words",
    [
        ({}, "no 'task'"),
        ({"task": 7}, "no 'task'"),
        ("not a mapping", "no 'task'"),
        ({"task": "no_such_task"}, "no verifier for task 'no_such_task'"),
    ],
)
def test_problems_without_a_known_task_get_a_reason(problem, words):
    verdict = verifiers.verify(problem, "Answer: 42")
    assert not verdict.correct
    assert verdict.reason.startswith("bad problem") and words in verdict.reason


@pytest.mark.parametrize("task", sorted(PUZZLE_AND_STEP_TASKS))
def test_missing_meta_is_a_bad_problem(task):
    verdict = verifiers.verify({"task": task, "answer": "24"}, "Answer: 24")
    assert verdict.reason.startswith("bad problem")


def test_the_package_imports_no_ray_torch_or_selfplay():
    script = (
        "import sys, verifiers, verifiers.pool; verifiers.tasks();"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('ray', 'torch', 'selfplay')))"
    )
    out = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
