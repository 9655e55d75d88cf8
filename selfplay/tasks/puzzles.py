"""Arithmetic puzzles: the Game of 24 and Countdown.

Both are solved by the same exact search (fractions.Fraction, never floats). Reference steps are
one operation per line ("8-4=4", "4*6=24") and the answer is the whole expression, which is what
the puzzle verifiers read. The search prefers solutions whose every intermediate value is a
non-negative integer, because those are the steps a small model (and a person) can follow.
"""

from __future__ import annotations

import random
from collections import Counter
from fractions import Fraction
from functools import lru_cache
from typing import Any, Mapping

from selfplay.tasks.base import Draw, Family, Reference

Step = tuple[Fraction, str, Fraction, Fraction]

# Game of 24 difficulty = how many expression trees reach 24 (counted over all 1820 draws of four
# numbers 1-13: the 1362 solvable ones split roughly in thirds at these counts). Fewer ways to
# reach 24 is harder, for people and for sampling alike.
GAME24_BANDS = {1: (16, 10**9), 2: (6, 15), 3: (1, 5)}

# Countdown draws from the TV show's tiles: small 1-10 (two of each) and the large 25/50/75/100.
COUNTDOWN_SMALL = [n for n in range(1, 11) for _ in range(2)]
COUNTDOWN_LARGE = [25, 50, 75, 100]


def _text(value: Fraction) -> str:
    text = str(value.numerator) if value.denominator == 1 else f"{value.numerator}/{value.denominator}"
    return f"({text})" if value.denominator != 1 or value < 0 else text


def _combine(a: Fraction, b: Fraction) -> list[tuple[str, Fraction, bool]]:
    """(operator, result, swapped) for every way to combine a and b."""
    out = [("+", a + b, False), ("*", a * b, False), ("-", a - b, False), ("-", b - a, True)]
    if b:
        out.append(("/", a / b, False))
    if a:
        out.append(("/", b / a, True))
    return out


def find_solution(numbers: list[int], target: int, use_all: bool) -> tuple[list[Step], str] | None:
    """Steps (a, op, b, result) and the expression reaching `target`, or None when unreachable.

    Tries whole non-negative intermediate values first, then any rational ones.
    """
    for whole_only in (True, False):
        found = _search(tuple((Fraction(n), str(n)) for n in numbers), Fraction(target), use_all, whole_only, set())
        if found is not None:
            steps, expression = found
            return steps, expression
    return None


def _search(state, target, use_all, whole_only, dead) -> tuple[list[Step], str] | None:
    for value, expression in state:
        if value == target and (len(state) == 1 or not use_all):
            # Every combined expression carries one outer pair of brackets; the answer needs none.
            return [], expression[1:-1] if expression.startswith("(") else expression
    key = tuple(sorted(v for v, _ in state))
    if len(state) < 2 or key in dead:
        return None
    for i in range(len(state)):
        for j in range(i + 1, len(state)):
            (a, ea), (b, eb) = state[i], state[j]
            rest = state[:i] + state[i + 1 : j] + state[j + 1 :]
            for op, result, swapped in _combine(a, b):
                if whole_only and (result.denominator != 1 or result < 0):
                    continue
                x, ex, y, ey = (b, eb, a, ea) if swapped else (a, ea, b, eb)
                found = _search(rest + ((result, f"({ex}{op}{ey})"),), target, use_all, whole_only, dead)
                if found is not None:
                    steps, expression = found
                    return [(x, op, y, result)] + steps, expression
    dead.add(key)
    return None


@lru_cache(maxsize=8192)
def count_solutions(numbers: tuple[int, ...], target: int) -> int:
    """How many expression trees over all of `numbers` equal `target` (a difficulty measure)."""
    numbers = tuple(sorted(numbers))
    if len(numbers) == 1:
        return int(numbers[0] == target)
    t = Fraction(target)
    count = 0
    for part, other in _splits(numbers):
        ways = _values(other)
        # Look up the one partner value each operation needs instead of combining every pair:
        # the last combination dominates the cost.
        for a, ca in _values(part).items():
            partners = [t - a, a - t, a + t]  # a+b, a-b, b-a
            if a:
                partners += [t / a, a * t]  # a*b, b/a
                if t:
                    partners.append(a / t)  # a/b
            found = sum(ways.get(b, 0) for b in partners)
            if not a and not t:  # 0*b for any b, 0/b for any b != 0
                found += sum(ways.values()) + sum(cb for b, cb in ways.items() if b)
            count += ca * found
    return count


def _splits(numbers: tuple[int, ...]):
    """Each unordered split of a multiset (by position) into two non-empty parts."""
    n = len(numbers)
    for mask in range(1, (1 << n) - 1):
        if mask < ((1 << n) - 1) ^ mask:
            yield (tuple(x for i, x in enumerate(numbers) if mask >> i & 1),
                   tuple(x for i, x in enumerate(numbers) if not mask >> i & 1))


@lru_cache(maxsize=8192)
def _values(numbers: tuple[int, ...]) -> dict[Fraction, int]:
    """Every value an expression over all of `numbers` can take, with how many trees give it."""
    if len(numbers) == 1:
        return {Fraction(numbers[0]): 1}
    out: Counter = Counter()
    for part, other in _splits(numbers):
        for a, ca in _values(tuple(sorted(part))).items():
            for b, cb in _values(tuple(sorted(other))).items():
                for _, result, _ in _combine(a, b):
                    out[result] += ca * cb
    return dict(out)


def _reference(numbers: list[int], target: int, use_all: bool) -> Reference:
    found = find_solution(numbers, target, use_all)
    if found is None:
        raise ValueError(f"no way to make {target} from {numbers}")
    steps, expression = found
    lines = tuple(f"{_text(a)}{op}{_text(b)}={_text(r)}" for a, op, b, r in steps)
    return Reference(lines, expression)


def draw_game24(rng: random.Random, difficulty: int) -> Draw:
    """Four numbers 1-13; `in_game24_band` keeps those solvable at this difficulty."""
    numbers = sorted(rng.randint(1, 13) for _ in range(4))
    shown = ",".join(map(str, numbers))
    return Draw(f"Make 24 from {shown}.", "24", {"numbers": numbers})


def in_game24_band(drawn: Draw, difficulty: int) -> bool:
    low, high = GAME24_BANDS[difficulty]
    return low <= count_solutions(tuple(drawn.meta["numbers"]), 24) <= high


def solve_game24(meta: Mapping[str, Any]) -> Reference:
    return _reference(list(meta["numbers"]), int(meta.get("target", 24)), use_all=True)


def draw_countdown(rng: random.Random, difficulty: int) -> Draw:
    """`difficulty + 1` tiles; the target is built from all of them, so a solution exists."""
    count = difficulty + 1
    while True:
        large = rng.randint(0, min(2, count - 1))
        tiles = rng.sample(COUNTDOWN_LARGE, large) + rng.sample(COUNTDOWN_SMALL, count - large)
        target = _build_target(rng, tiles)
        if target is not None:
            shown = ",".join(map(str, tiles))
            return Draw(f"Make {target} from {shown}.", str(target), {"numbers": tiles, "target": target})


def _build_target(rng: random.Random, tiles: list[int]) -> int | None:
    # Fold the tiles with random operations, keeping whole positive values and skipping moves that
    # leave a value unchanged (x*1, x/1), so the target needs every tile it was built from.
    values = list(tiles)
    while len(values) > 1:
        a, b = values.pop(rng.randrange(len(values))), values.pop(rng.randrange(len(values)))
        a, b = max(a, b), min(a, b)
        moves = [a + b] + ([a - b] if a > b else []) + ([a * b] if b > 1 else [])
        moves += [a // b] if b > 1 and a % b == 0 else []
        values.append(rng.choice(moves))
    target = values[0]
    if not 10 <= target <= 999 or target in tiles:
        return None
    return target


def solve_countdown(meta: Mapping[str, Any]) -> Reference:
    return _reference(list(meta["numbers"]), int(meta["target"]), use_all=bool(meta.get("use_all", False)))


GAME24 = Family(
    name="game24", task="game24", difficulty="1 = many ways to reach 24, 3 = few",
    min_difficulty=1, max_difficulty=3, draw=draw_game24, solve=solve_game24, accept=in_game24_band,
)
COUNTDOWN = Family(
    name="countdown", task="countdown", difficulty="number of tiles minus one (2 to 6 tiles)",
    min_difficulty=1, max_difficulty=5, draw=draw_countdown, solve=solve_countdown,
)
