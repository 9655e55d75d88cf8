"""Procedural task families: problems with gold answers, drawn from (seed, difficulty).

    from selfplay.tasks import make_problems, reference_solution
    problems = make_problems("addition", n=100, seed=0, difficulty=3, split="heldout")
    trace = reference_solution(problems[0]).trace()

Splits are disjoint by construction: a problem's split follows from its content hash (one in
`HELDOUT_SHARE` of all problems is held out), and each split has its own random stream. So a
held-out problem never appears in any train set, whatever the seed or size of either.
"""

from __future__ import annotations

import random
from typing import Any, Iterator, Mapping

from selfplay.records import Problem
from selfplay.tasks.arithmetic import ADDITION, MULTIPLICATION
from selfplay.tasks.base import Draw, Family, Reference
from selfplay.tasks.puzzles import COUNTDOWN, GAME24
from selfplay.tasks.words import CIPHER, LETTER_COUNT

FAMILIES: dict[str, Family] = {f.name: f for f in (ADDITION, MULTIPLICATION, GAME24, COUNTDOWN, CIPHER, LETTER_COUNT)}

HELDOUT_SHARE = 8
"""One problem in this many (by content hash) belongs to the held-out pool, the rest to train."""

TRAIN = "train"

__all__ = [
    "FAMILIES", "Draw", "Family", "Reference", "family", "is_heldout", "make_problems",
    "problem_stream", "reference_solution",
]


def family(name: str) -> Family:
    try:
        return FAMILIES[name]
    except KeyError:
        raise ValueError(f"unknown task family {name!r}; known: {', '.join(sorted(FAMILIES))}") from None


def check_difficulties(name: str, bands: Mapping[str, Any]) -> dict[str, list[int]]:
    """Validate {family: [difficulties]} (a training or evaluation band); `name` is the config path
    named in the error. Returns plain dicts and lists."""
    if not isinstance(bands, Mapping) or not bands:
        raise ValueError(f"{name}: must map task families to difficulty lists, got {bands!r}")
    for fam, difficulties in bands.items():
        if fam not in FAMILIES:
            raise ValueError(f"{name}: unknown task family {fam!r}; known: {', '.join(sorted(FAMILIES))}")
        if not difficulties:
            raise ValueError(f"{name}.{fam}: needs at least one difficulty")
        for d in difficulties:
            FAMILIES[fam].check_difficulty(d)
    return {k: list(v) for k, v in bands.items()}


def is_heldout(problem_id: str) -> bool:
    """Whether a problem (by id) is in the held-out pool; every non-train split draws from it."""
    return int(problem_id[:8], 16) % HELDOUT_SHARE == 0


def problem_stream(name: str, seed: int, difficulty: int, split: str = TRAIN) -> Iterator[Problem]:
    """An endless, deterministic stream of `split` problems (repeats possible in small spaces)."""
    fam = family(name)
    fam.check_difficulty(difficulty)
    if not isinstance(split, str) or not split:
        raise ValueError(f"split must be a non-empty string, got {split!r}")
    # A string seed is hashed with SHA-512 by `random`, so streams do not depend on PYTHONHASHSEED.
    rng = random.Random(f"{name}|{split}|{difficulty}|{seed}")
    want_heldout = split != TRAIN
    while True:
        drawn = fam.draw(rng, difficulty)
        problem = Problem(
            source=f"procedural:{name}", task=fam.task, question=drawn.question, answer=drawn.answer,
            meta=drawn.meta, difficulty=difficulty, split=split,
        )
        if is_heldout(problem.id) == want_heldout and (fam.accept is None or fam.accept(drawn, difficulty)):
            yield problem


def make_problems(
    name: str, n: int, seed: int, difficulty: int, split: str = TRAIN, *, allow_fewer: bool = False
) -> list[Problem]:
    """`n` distinct problems of family `name`, deterministic given the arguments.

    Small spaces (1-digit addition has 100 problems, about 12 of them held out) may not hold `n`
    distinct problems: that raises ValueError, or with `allow_fewer` returns all that were found.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueError(f"n must be a non-negative int, got {n!r}")
    seen: dict[str, Problem] = {}
    misses, patience = 0, max(2000, 20 * n)
    stream = problem_stream(name, seed, difficulty, split)
    while len(seen) < n and misses < patience:
        problem = next(stream)
        if problem.id in seen:
            misses += 1
        else:
            seen[problem.id] = problem
            misses = 0
    if len(seen) < n and not allow_fewer:
        raise ValueError(
            f"only {len(seen)} distinct {name} problems at difficulty {difficulty} in split {split!r}, "
            f"asked for {n}: the space is too small (pass allow_fewer=True to take them all)"
        )
    return list(seen.values())


def reference_solution(problem: Problem | Mapping[str, Any]) -> Reference:
    """The reference step-by-step solution of a problem of any family (from its meta)."""
    row = problem.to_dict() if isinstance(problem, Problem) else problem
    task = row.get("task")
    matches = [f for f in FAMILIES.values() if f.task == task]
    if not matches:
        raise ValueError(f"no task family writes reference solutions for task {task!r}")
    try:
        return matches[0].solve(row.get("meta") or {})
    except (KeyError, TypeError) as e:
        raise ValueError(f"{task} problem has malformed meta ({e!r})") from None
