"""What an answer *is* (a number, a set of solutions, a tuple, an interval, an equation ...)
and the structural half of the equivalence policy.

Scalars are compared by a `judge`: `FractionJudge` settles plain numbers exactly with
`fractions.Fraction` (no sympy, no worker: the common case) and raises `NeedsSympy` for
anything else; verifiers/math_sympy.py provides the judge that can decide the rest.
"""

from __future__ import annotations

from dataclasses import dataclass
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


# ----------------------------------------------------------------------------- shapes

@dataclass(frozen=True)
class Shape:
    kind: str
    """scalar, solutions, set, tuple, pair, bracket, interval, matrix, equation."""
    items: tuple = ()
    """scalar: (node,); solutions/set/tuple/pair/bracket: item nodes; interval: tuple of
    (lo, hi, left_open, right_open); matrix: rows; equation: (lhs, rhs)."""
    variable: str = ""
    """For "x = 3" style answers: the variable named on the left."""


def shape_of(node: Node) -> Shape:
    kind = node.kind
    if kind == "seq":
        opening, closing = node.value
        items = tuple(_expand_pm(item) for item in node.args)
        flat = tuple(x for group in items for x in group)
        if len(flat) > MAX_ITEMS:
            raise TooLarge(f"more than {MAX_ITEMS} items")
        if opening == "\\{":
            return Shape("set", flat)
        if opening == "":
            intervals = _as_intervals(node.args)
            # "(1,2), (3,4)" is a list of points; "x < -1 or x > 3" is a union.
            if intervals is not None and any(a.kind != "seq" for a in node.args):
                return Shape("interval", intervals)
            return _solutions(flat)
        if opening == "(":
            return Shape("pair" if len(flat) == 2 else "tuple", flat)
        return Shape("bracket", flat)
    if kind in ("interval", "union") or kind == "rel" and _inequality(node):
        intervals = _as_intervals((node,))
        if intervals is not None:
            return Shape("interval", intervals)
    if kind == "matrix":
        return Shape("matrix", node.args)
    expanded = _expand_pm(node)
    if len(expanded) > 1:
        return _solutions(expanded)
    if kind == "rel":
        if node.value == ("=",):
            lhs, rhs = node.args
            if lhs.kind == "sym" and not _mentions(rhs, lhs.value):
                return Shape("scalar", (rhs,), variable=lhs.value)
            return Shape("equation", node.args)
        raise TooLarge("unsupported relation")  # x = y = 3, x != 2: rejected with a reason
    if kind == "const" and node.value == "empty":
        return Shape("set", ())
    return Shape("scalar", (node,))


def _solutions(items: tuple[Node, ...]) -> Shape:
    """A bare list "2, -2" / "x = 2 or x = -2": values, order-free, one variable name."""
    values, names = [], set()
    for item in items:
        if item.kind == "rel" and item.value == ("=",) and item.args[0].kind == "sym":
            names.add(item.args[0].value)
            item = item.args[1]
        values.append(item)
    return Shape("solutions", tuple(values), variable=names.pop() if len(names) == 1 else "")


def _expand_pm(node: Node) -> tuple[Node, ...]:
    """a \\pm b -> (a + b, a - b); only the first ± expands (two values), as answers use it."""
    path = _find(node, "pm")
    if path is None:
        return (node,)
    pm = _at(node, path)
    plus = Node("add", pm.args)
    minus = Node("add", (pm.args[0], Node("neg", (pm.args[1],))))
    if pm.args[0].kind == "num" and pm.args[0].value == 0:
        plus, minus = pm.args[1], Node("neg", (pm.args[1],))
    return _replace(node, path, plus), _replace(node, path, minus)


def _find(node: Node, kind: str, path: tuple = ()) -> tuple | None:
    if node.kind == kind:
        return path
    if node.kind in ("seq", "matrix"):
        return None
    for i, arg in enumerate(node.args):
        if isinstance(arg, Node):
            found = _find(arg, kind, path + (i,))
            if found is not None:
                return found
    return None


def _at(node: Node, path: tuple) -> Node:
    for i in path:
        node = node.args[i]
    return node


def _replace(node: Node, path: tuple, new: Node) -> Node:
    if not path:
        return new
    args = list(node.args)
    args[path[0]] = _replace(args[path[0]], path[1:], new)
    return Node(node.kind, tuple(args), node.value, node.decimal)


def _mentions(node: Node, name: str) -> bool:
    if node.kind == "sym" and node.value == name:
        return True
    return any(isinstance(a, Node) and _mentions(a, name) for a in node.args)


def _inequality(node: Node) -> bool:
    return node.kind == "rel" and all(op in ("<", "<=", ">", ">=", "in") for op in node.value)


_INF = Node("const", value="oo")
_NEG_INF = Node("neg", (Node("const", value="oo"),))


def _as_intervals(nodes: tuple[Node, ...]) -> tuple | None:
    """Intervals, unions and one-variable inequalities as (lo, hi, left_open, right_open)."""
    out = []
    for node in nodes:
        if node.kind == "union":
            inner = _as_intervals(node.args)
            if inner is None:
                return None
            out.extend(inner)
        elif node.kind == "interval":
            out.append((node.args[0], node.args[1], *node.value))
        elif node.kind == "seq" and node.value in (("(", ")"), ("[", "]")) and len(node.args) == 2:
            opened = node.value[0] == "("
            out.append((node.args[0], node.args[1], opened, opened))
        elif node.kind == "rel" and _inequality(node):
            interval = _inequality_interval(node)
            if interval is None:
                return None
            out.append(interval)
        else:
            return None
    return tuple(out)


def _inequality_interval(node: Node) -> tuple | None:
    exprs, ops = node.args, node.value
    if ops == ("in",):
        inner = _as_intervals((node.args[1],))
        return inner[0] if inner and len(inner) == 1 else None
    if len(ops) == 1:
        left, right = exprs
        op = ops[0]
        if left.kind == "sym":  # x > 3
            if op in (">", ">="):
                return (right, _INF, op == ">", True)
            return (_NEG_INF, right, True, op == "<")
        if right.kind == "sym":  # 3 < x
            if op in ("<", "<="):
                return (left, _INF, op == "<", True)
            return (_NEG_INF, left, True, op == ">")
        return None
    if len(ops) == 2 and exprs[1].kind == "sym":
        lo, hi = exprs[0], exprs[2]
        if all(op in ("<", "<=") for op in ops):
            return (lo, hi, ops[0] == "<", ops[1] == "<")
        if all(op in (">", ">=") for op in ops):
            return (hi, lo, ops[1] == ">", ops[0] == ">")
    return None
