"""Answers that name a set of reals: intervals, unions, inequalities, set differences.

Each becomes a tuple of intervals ``(lo, hi, left_open, right_open)`` whose ends are trees
(``-oo`` / ``oo`` for unbounded ends), so verifiers/math_compare.py can match them end by end.
What is read: ``(1, 2]``, ``[0, \\infty)``, unions (``\\cup``), ``x > 3``, ``-2 < x \\le 5``,
linear sides (``2x \\le -8``, ``-x > -1``), ``|x| < c`` and ``|x| > c``, two conditions joined
by "and" (an intersection), and ``\\mathbb{R} \\setminus \\{0\\}`` (points removed). Bounds that
must be ordered (intersections, removed points) are settled with exact rationals only; anything
else is left unread (None) rather than guessed.
"""

from __future__ import annotations

from fractions import Fraction

from verifiers.math_value import rational
from verifiers.math_parse import Node, num

INF = Node("const", value="oo")
NEG_INF = Node("neg", (INF,))

Interval = tuple  # (lo, hi, left_open, right_open)


def inequality(node: Node) -> bool:
    return node.kind == "rel" and all(op in ("<", "<=", ">", ">=", "in") for op in node.value)


def as_intervals(nodes: tuple[Node, ...]) -> tuple | None:
    """The union of `nodes` as intervals, or None when one of them is not a set of reals."""
    out: list[Interval] = []
    for node in nodes:
        if node.kind == "union":
            inner = as_intervals(node.args)
        elif node.kind == "interval":
            inner = ((node.args[0], node.args[1], *node.value),)
        elif node.kind == "seq" and node.value in (("(", ")"), ("[", "]")) and len(node.args) == 2:
            opened = node.value[0] == "("
            inner = ((node.args[0], node.args[1], opened, opened),)
        elif inequality(node):
            inner = _inequality_intervals(node)
        elif node.kind == "setminus":
            inner = _set_difference(node)
        else:
            return None
        if inner is None:
            return None
        out.extend(inner)
    return tuple(out)


def intersection(nodes: tuple[Node, ...]) -> tuple | None:
    """"x > -2 and x < 3": the intervals of each condition, intersected (rational ends only)."""
    result = None
    for node in nodes:
        intervals = as_intervals((node,))
        if intervals is None or len(intervals) != 1:
            return None
        result = intervals[0] if result is None else _intersect(result, intervals[0])
        if result is None:
            return None
    return (result,) if result is not None else None


def _intersect(a: Interval, b: Interval) -> Interval | None:
    lo_a, lo_b, hi_a, hi_b = _value(a[0]), _value(b[0]), _value(a[1]), _value(b[1])
    if None in (lo_a, lo_b, hi_a, hi_b):
        return None
    if lo_a > lo_b or lo_a == lo_b and a[2]:
        lo, lo_open = a[0], a[2]
    else:
        lo, lo_open = b[0], b[2]
    if hi_a < hi_b or hi_a == hi_b and a[3]:
        hi, hi_open = a[1], a[3]
    else:
        hi, hi_open = b[1], b[3]
    if _value(lo) >= _value(hi):
        return None  # empty or a single point: not read as an interval
    return (lo, hi, lo_open, hi_open)


def _value(node: Node) -> Fraction | float | None:
    """An interval end as a number that orders: a rational, or +-infinity."""
    if node == INF:
        return float("inf")
    if node == NEG_INF:
        return float("-inf")
    return rational(node)


def _set_difference(node: Node) -> tuple | None:
    """``A \\setminus \\{p, q\\}``: A's intervals split at each removed point."""
    whole, removed = node.args
    intervals = as_intervals((whole,))
    if intervals is None or removed.kind != "seq" or removed.value != ("\\{", "\\}"):
        return None
    for point in removed.args:
        at = rational(point) if point.kind != "const" else None
        if at is None:
            return None
        split: list[Interval] = []
        for lo, hi, lo_open, hi_open in intervals:
            low, high = _value(lo), _value(hi)
            if low is None or high is None:
                return None
            if low < at < high:
                split += [(lo, point, lo_open, True), (point, hi, True, hi_open)]
            elif at == low:
                split.append((lo, hi, True, hi_open))
            elif at == high:
                split.append((lo, hi, lo_open, True))
            else:
                split.append((lo, hi, lo_open, hi_open))
        intervals = tuple(split)
    return intervals


def _inequality_intervals(node: Node) -> tuple | None:
    exprs, ops = node.args, node.value
    if ops == ("in",):
        inner = as_intervals((node.args[1],))
        return inner if inner and node.args[0].kind == "sym" else None
    if len(ops) == 1:
        return _one_sided(exprs[0], ops[0], exprs[1])
    if len(ops) == 2 and exprs[1].kind == "sym":
        lo, hi = exprs[0], exprs[2]
        if all(op in ("<", "<=") for op in ops):
            return ((lo, hi, ops[0] == "<", ops[1] == "<"),)
        if all(op in (">", ">=") for op in ops):
            return ((hi, lo, ops[1] == ">", ops[0] == ">"),)
    return None


_FLIP = {"<": ">", "<=": ">=", ">": "<", ">=": "<="}


def _one_sided(left: Node, op: str, right: Node) -> tuple | None:
    if op not in _FLIP:
        return None
    if left.kind != "sym" and right.kind == "sym" or right.kind == "abs" and left.kind != "abs":
        left, op, right = right, _FLIP[op], left  # "3 < x" is "x > 3"
    if left.kind == "sym":
        bound = right
    elif left.kind == "abs" and left.args[0].kind == "sym":
        return _absolute(op, right)
    else:
        linear = _linear(left, right)
        if linear is None:
            return None
        coefficient, bound_value = linear
        if coefficient < 0:
            op = _FLIP[op]
        bound = num(bound_value)
    if op in (">", ">="):
        return ((bound, INF, op == ">", True),)
    return ((NEG_INF, bound, True, op == "<"),)


def _absolute(op: str, bound: Node) -> tuple | None:
    """|x| < c is (-c, c); |x| > c is (-oo, -c) u (c, oo); c a positive number."""
    value = rational(bound)
    if value is None or value <= 0:
        return None
    neg = num(-value)
    if op in ("<", "<="):
        return ((neg, bound, op == "<", op == "<"),)
    opened = op == ">"
    return ((NEG_INF, neg, True, opened), (bound, INF, opened, True))


def _linear(left: Node, right: Node) -> tuple[Fraction, Fraction] | None:
    """(a, root) for "a*x + b  op  c" in one variable with rational a != 0, b, c."""
    form_l, form_r = _affine(left), _affine(right)
    if form_l is None or form_r is None:
        return None
    names = {n for n in (form_l[0], form_r[0]) if n}
    if len(names) != 1:
        return None
    a = form_l[1] - form_r[1]
    b = form_l[2] - form_r[2]
    if a == 0:
        return None
    return a, -b / a


def _affine(node: Node) -> tuple[str, Fraction, Fraction] | None:
    """(variable, a, b) with node == a*variable + b, variable "" when constant."""
    kind = node.kind
    if kind == "sym":
        return node.value, Fraction(1), Fraction(0)
    value = rational(node)
    if value is not None:
        return "", Fraction(0), value
    if kind == "neg":
        inner = _affine(node.args[0])
        return None if inner is None else (inner[0], -inner[1], -inner[2])
    if kind == "add":
        a, b = _affine(node.args[0]), _affine(node.args[1])
        if a is None or b is None or a[0] and b[0] and a[0] != b[0]:
            return None
        return a[0] or b[0], a[1] + b[1], a[2] + b[2]
    if kind in ("mul", "div"):
        a, b = _affine(node.args[0]), _affine(node.args[1])
        if a is None or b is None:
            return None
        if kind == "mul" and not a[0]:
            a, b = b, a  # the constant factor second
        if b[0] or kind == "div" and b[2] == 0:
            return None  # only "constant * x", "x * constant", "x / constant"
        factor = b[2] if kind == "mul" else 1 / b[2]
        return a[0], a[1] * factor, a[2] * factor
    return None
