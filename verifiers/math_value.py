"""Exact numbers: the Fraction judge, and the size limits every judge shares.

Scalars are compared by a `judge`: `FractionJudge` settles plain numbers exactly with
`fractions.Fraction` (no sympy, no worker: the common case) and raises `NeedsSympy` for
anything else; verifiers/math_sympy.py provides the judge that can decide the rest. What an answer *is*
(a number, a set, a tuple, an interval ...) lives in verifiers/math_shape.py.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Protocol

from verifiers.math_parse import Node

MAX_EXPONENT = 2_000
"""Largest integer exponent evaluated exactly; 10^{10^{10}} is refused before it is built."""
MAX_RESULT_DIGITS = 5_000
"""Largest power result (in digits) built exactly."""
MAX_ITEMS = 40
"""Most items in a list / set / tuple compared item by item (the matching is quadratic)."""


class NeedsSympy(Exception):
    """The Fraction judge cannot decide; the pair goes to the sympy judge (in the worker)."""


class TooLarge(ValueError):
    """An exponent or factorial too big to build; the answer is rejected with this reason."""


class Judge(Protocol):
    def equal(self, gold: Node, pred: Node) -> bool: ...

    def same_equation(self, gold: Node, pred: Node) -> bool: ...


# ----------------------------------------------------------------------------- exact numbers

def rational(node: Node) -> Fraction | None:
    """The exact rational value of a plain-number tree, None when it needs more than Fractions."""
    kind = node.kind
    if kind == "num":
        return node.value
    if kind == "neg":
        inner = rational(node.args[0])
        return None if inner is None else -inner
    if kind in ("add", "mul", "div"):
        left, right = rational(node.args[0]), rational(node.args[1])
        if left is None or right is None:
            return None
        if kind == "add":
            return left + right
        if kind == "mul":
            return left * right
        return None if right == 0 else left / right
    if kind == "pow":
        base, exponent = rational(node.args[0]), rational(node.args[1])
        if base is None or exponent is None or exponent.denominator != 1:
            return None
        return exact_power(base, int(exponent))
    return None


def exact_power(base: Fraction, exponent: int) -> Fraction | None:
    check_power(base, exponent)
    if base == 0 and exponent < 0:
        return None
    return base**exponent


def check_power(base: Fraction | int, exponent: int) -> None:
    """Refuse powers whose result would be huge, before computing them."""
    base = Fraction(base)
    if base in (0, 1, -1):
        return
    if abs(exponent) > MAX_EXPONENT:
        raise TooLarge(f"exponent {exponent} too large")
    digits = max(len(str(abs(base.numerator))), len(str(base.denominator)))
    if digits * abs(exponent) > MAX_RESULT_DIGITS:
        raise TooLarge("power result too large")


class FractionJudge:
    """Decides plain numbers exactly; defers everything else."""

    def equal(self, gold: Node, pred: Node) -> bool:
        g, p = rational(gold), rational(pred)
        if g is None or p is None:
            raise NeedsSympy
        return g == p

    def same_equation(self, gold: Node, pred: Node) -> bool:
        raise NeedsSympy
