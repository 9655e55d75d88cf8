"""Scalars the Fraction judge cannot settle: radicals, pi, i, symbols, equations.

Trees from verifiers/math_parse.py become sympy objects built directly (Integer, Rational,
Symbol, Add, Mul, Pow, ...): no sympify / parse_expr / eval ever sees model text. Sizes are
checked before each object is built. Everything here may be slow (simplify, equals), so it
runs in the killable worker (verifiers/math_worker.py) or inline in a pool worker.
"""

from __future__ import annotations

import random
from fractions import Fraction

import sympy

from verifiers.math_parse import Node
from verifiers.math_value import MAX_EXPONENT, FractionJudge, NeedsSympy, TooLarge, check_power

MIN_APPROX_DIGITS = 3
"""Significant digits a decimal needs before it may stand for an irrational gold value."""
PROBE_POINTS = 4
"""Random points at which two symbolic expressions are compared before simplify is tried."""

_CONSTANTS = {"pi": sympy.pi, "e": sympy.E, "i": sympy.I, "oo": sympy.oo}
_FUNCS = {
    "sin": sympy.sin, "cos": sympy.cos, "tan": sympy.tan, "cot": sympy.cot, "sec": sympy.sec,
    "csc": sympy.csc, "arcsin": sympy.asin, "arccos": sympy.acos, "arctan": sympy.atan,
    "sinh": sympy.sinh, "cosh": sympy.cosh, "tanh": sympy.tanh, "ln": sympy.log,
    "log": sympy.log, "exp": sympy.exp, "floor": sympy.floor, "ceiling": sympy.ceiling,
}


def to_sympy(node: Node) -> sympy.Expr:
    """Build the sympy expression for a scalar tree. Raises TooLarge / ValueError."""
    kind, args = node.kind, node.args
    if kind == "num":
        return sympy.Rational(node.value.numerator, node.value.denominator)
    if kind == "sym":
        return sympy.Symbol(node.value)
    if kind == "const":
        if node.value not in _CONSTANTS:
            raise ValueError(f"{node.value} is not a number")
        return _CONSTANTS[node.value]
    if kind == "neg":
        return -to_sympy(args[0])
    if kind == "add":
        return sympy.Add(to_sympy(args[0]), to_sympy(args[1]))
    if kind == "mul":
        return sympy.Mul(to_sympy(args[0]), to_sympy(args[1]))
    if kind == "div":
        bottom = to_sympy(args[1])
        if bottom == 0:
            raise ValueError("division by zero")
        return sympy.Mul(to_sympy(args[0]), sympy.Pow(bottom, -1))
    if kind == "pow":
        return _power(to_sympy(args[0]), to_sympy(args[1]))
    if kind == "sqrt":
        radicand = to_sympy(args[0])
        if len(args) == 1:
            return sympy.sqrt(radicand)
        index = to_sympy(args[1])
        if not index.is_Integer or not 2 <= int(index) <= MAX_EXPONENT:
            raise ValueError("root index must be a small integer")
        return sympy.root(radicand, index)
    if kind == "func":
        return _function(node)
    if kind == "abs":
        return sympy.Abs(to_sympy(args[0]))
    if kind == "fact":
        inner = to_sympy(args[0])
        if inner.is_Integer and not 0 <= int(inner) <= 1_000:
            raise TooLarge("factorial argument out of range")
        return sympy.factorial(inner)
    if kind == "binom":
        n, k = to_sympy(args[0]), to_sympy(args[1])
        if n.is_Integer and abs(int(n)) > 10_000:
            raise TooLarge("binomial too large")
        return sympy.binomial(n, k)
    raise ValueError(f"{kind} is not a single value")


def _power(base: sympy.Expr, exponent: sympy.Expr) -> sympy.Expr:
    if exponent.is_Rational:
        numerator = int(exponent.p)
        if base.is_Rational:
            check_power(Fraction(int(base.p), int(base.q)), numerator)
        elif abs(numerator) > MAX_EXPONENT:
            raise TooLarge(f"exponent {numerator} too large")
    elif exponent.is_number and base.is_number and abs(exponent.evalf(15)) > MAX_EXPONENT:
        raise TooLarge("exponent too large")
    return sympy.Pow(base, exponent)


def _function(node: Node) -> sympy.Expr:
    name = node.value
    arg = to_sympy(node.args[0])
    if name == "lg":
        return sympy.log(arg, 10)
    if name == "log" and len(node.args) == 2:
        return sympy.log(arg, to_sympy(node.args[1]))
    return _FUNCS[name](arg)


class SympyJudge:
    """Exact symbolic equality, plus the one approximation the policy allows."""

    def __init__(self) -> None:
        self.exact = FractionJudge()

    def equal(self, gold: Node, pred: Node) -> bool:
        try:
            return self.exact.equal(gold, pred)
        except NeedsSympy:
            pass
        g, p = to_sympy(gold), to_sympy(pred)
        approx = _approximation(pred)
        if approx is not None and not g.free_symbols:
            verdict = _approximates(g, *approx)
            if verdict is not None:
                return verdict
        return _equal_exprs(g, p)

    def same_equation(self, gold: Node, pred: Node) -> bool:
        """Same solution set by a nonzero constant factor: y = 2x + 1 ~ 2x - y + 1 = 0."""
        g = to_sympy(gold.args[0]) - to_sympy(gold.args[1])
        p = to_sympy(pred.args[0]) - to_sympy(pred.args[1])
        if g == 0 or p == 0:
            return g == p
        if _ratio_varies(g, p):
            return False
        ratio = sympy.cancel(g / p)
        if ratio.free_symbols:
            ratio = sympy.simplify(ratio)
        return not ratio.free_symbols and ratio.is_finite is True and ratio != 0


def _approximation(pred: Node) -> tuple[Fraction, Fraction, int] | None:
    """(value, unit in the last place, significant digits) of a decimal literal, else None."""
    sign = 1
    if pred.kind == "neg":
        sign, pred = -1, pred.args[0]
    if pred.kind != "num" or not pred.decimal:
        return None
    mantissa, _, exponent = pred.decimal.lower().partition("e")
    decimals = len(mantissa.partition(".")[2])
    digits = mantissa.replace(".", "").lstrip("0")
    ulp = Fraction(1, 10**decimals) * Fraction(10) ** int(exponent or 0)
    return sign * pred.value, ulp, len(digits)


def _approximates(gold: sympy.Expr, value: Fraction, ulp: Fraction, digits: int) -> bool | None:
    """A decimal for an irrational real gold: right when it has >= MIN_APPROX_DIGITS
    significant digits and is the gold rounded or truncated to that many decimals
    (sqrt2 ~ 1.41 or 1.414, not 1.42). None when the policy does not apply (gold rational
    or not real): compare exactly."""
    if gold.is_rational is not False or gold.is_real is not True:
        return None
    if digits < MIN_APPROX_DIGITS:
        return False
    exact = sympy.Rational(value.numerator, value.denominator)
    unit = sympy.Rational(ulp.numerator, ulp.denominator)
    gold_value = gold.evalf(40)
    rounded = abs(gold_value - exact) <= unit / 2
    truncated = (gold_value >= 0) == (exact >= 0) and abs(exact) <= abs(gold_value) < abs(exact) + unit
    return bool(rounded or truncated)


def _equal_exprs(g: sympy.Expr, p: sympy.Expr) -> bool:
    diff = g - p
    if diff == 0:
        return True
    if diff.has(sympy.zoo, sympy.nan, sympy.oo, -sympy.oo):
        return False
    if not diff.free_symbols:
        if _clearly_nonzero(diff, g):
            return False  # clearly different numbers: no proof search needed
    elif _differs_somewhere(diff):
        return False
    # Cheapest proofs first; simplify and equals only for what they leave.
    if sympy.expand(diff) == 0 or sympy.cancel(diff) == 0 or sympy.simplify(diff) == 0:
        return True
    return diff.equals(0) is True


def _clearly_nonzero(diff: sympy.Expr, gold: sympy.Expr) -> bool:
    """|diff| is far above what 40-digit evaluation noise could produce."""
    value = diff.evalf(40)
    if not value.is_number or value == 0:
        return False
    scale = 1 + (abs(gold.evalf(40)) if not gold.free_symbols else 0)
    return bool(abs(value) > sympy.Float("1e-30", 40) * scale)


def _differs_somewhere(diff: sympy.Expr) -> bool:
    rng = random.Random(1234)
    symbols = sorted(diff.free_symbols, key=str)
    for _ in range(PROBE_POINTS):
        point = {s: sympy.Rational(rng.randint(-97, 97), rng.randint(1, 13)) + sympy.Rational(1, 7)
                 for s in symbols}
        value = diff.subs(point).evalf(30)
        if value.is_number and value.is_finite and abs(value) > 1e-12:
            return True
    return False


def _ratio_varies(g: sympy.Expr, p: sympy.Expr) -> bool:
    """Quick reject for equations: g/p takes two clearly different values at random points."""
    rng = random.Random(4321)
    symbols = sorted(g.free_symbols | p.free_symbols, key=str)
    seen = None
    for _ in range(PROBE_POINTS):
        point = {s: sympy.Rational(rng.randint(-97, 97), rng.randint(1, 13)) + sympy.Rational(1, 7)
                 for s in symbols}
        value = (g / p).subs(point).evalf(30)
        if not (value.is_number and value.is_finite):
            continue
        if seen is not None and abs(value - seen) > 1e-12 * (1 + abs(seen)):
            return True
        seen = value
    return False
