"""The structural equivalence rules: which answer shapes may match which, item by item.

Gold is trusted and sets the expectations: a gold set is order-free, a gold tuple is ordered,
a gold interval cares about bracket types, a gold "x = 3" accepts "3" and "x = 3" but not
"y = 3". Scalars are compared by the judge (exactly, or by the approximation policy in
verifiers/math_sympy.py).
"""

from __future__ import annotations

from verifiers.math_parse import Node
from verifiers.math_shape import Shape, shape_of
from verifiers.math_value import Judge

_ORDERED = {"tuple", "pair", "bracket"}
_UNORDERED = {"scalar", "solutions", "set"}


def compare(gold: Shape, pred: Shape, judge: Judge) -> tuple[bool, str]:
    """(equal, reason) for two answer shapes."""
    kinds = {gold.kind, pred.kind}
    if "assignments" in kinds:
        return _assignments(gold, pred, judge)
    if gold.variable and pred.variable and gold.variable != pred.variable:
        return False, f"different variable: {gold.variable} vs {pred.variable}"
    if "interval" in kinds:
        return _intervals(gold, pred, judge)
    if "matrix" in kinds:
        return _matrix(gold, pred, judge)
    if "ratio" in kinds:
        return _ratio(gold, pred, judge)
    if "equation" in kinds:
        return _equation(gold, pred, judge)
    if kinds & _ORDERED:
        return _ordered(gold, pred, judge)
    return _unordered(gold, pred, judge)


def same(gold: Node, pred: Node, judge: Judge) -> bool:
    """Scalar equality: identical trees at once, infinities by sign, the rest by the judge."""
    if gold == pred:
        return True
    if "seq" in (gold.kind, pred.kind) or "ellipsis" in (gold.value, pred.value):
        # a tuple inside a list of tuples is compared as a shape; "..." only equals "..."
        return gold.kind == pred.kind == "seq" and compare(shape_of(gold), shape_of(pred), judge)[0]
    g_inf, p_inf = _infinity_sign(gold), _infinity_sign(pred)
    if g_inf or p_inf:
        return g_inf == p_inf
    return judge.equal(gold, pred)


def _infinity_sign(node: Node) -> int:
    if node.kind == "const" and node.value == "oo":
        return 1
    if node.kind == "neg" and _infinity_sign(node.args[0]):
        return -_infinity_sign(node.args[0])
    return 0


def _unordered(gold: Shape, pred: Shape, judge: Judge) -> tuple[bool, str]:
    g_items, p_items = gold.items, pred.items
    unmatched_gold = [g for g in g_items if not any(same(g, p, judge) for p in p_items)]
    if unmatched_gold:
        if len(g_items) == 1 and len(p_items) == 1:
            return False, "not equal"
        return False, f"{len(unmatched_gold)} of {len(g_items)} gold values missing"
    extra = [p for p in p_items if not any(same(g, p, judge) for g in g_items)]
    if extra:
        return False, f"extra answers: {len(extra)} value(s) not in the gold answer"
    if not g_items and p_items or g_items and not p_items:
        return False, "empty vs non-empty"
    label = "set" if "set" in (gold.kind, pred.kind) else "equal"
    return True, f"{label}: same {len(g_items)} value(s)" if len(g_items) != 1 else "equal"


def _ordered(gold: Shape, pred: Shape, judge: Judge) -> tuple[bool, str]:
    gk, pk = gold.kind, pred.kind
    if "set" in (gk, pk):
        return False, "set vs tuple: order and brackets differ"
    if "scalar" in (gk, pk):
        return False, f"{gk} vs {pk}"
    if gk == "solutions":
        return False, f"a list of values vs a {pk}"
    # "(1, 2)" vs "[1, 2]" may be an open vs a closed interval: brackets must agree. With
    # three or more items both are vector notation; a bare "1, 2" follows the gold brackets.
    if pk == "solutions" or gk == pk or {gk, pk} == {"tuple", "bracket"}:
        return _elementwise(gold.items, pred.items, judge)
    return False, f"bracket types differ ({gk} vs {pk})"


def _elementwise(g_items: tuple, p_items: tuple, judge: Judge) -> tuple[bool, str]:
    if len(g_items) != len(p_items):
        return False, f"{len(p_items)} items where gold has {len(g_items)}"
    for i, (g, p) in enumerate(zip(g_items, p_items)):
        if not same(g, p, judge):
            return False, f"item {i + 1} differs"
    return True, f"equal: {len(g_items)} items in order"


def _intervals(gold: Shape, pred: Shape, judge: Judge) -> tuple[bool, str]:
    g, p = _interval_list(gold), _interval_list(pred)
    if g is None or p is None:
        return False, f"{gold.kind} vs {pred.kind}"
    if len(g) != len(p):
        return False, f"{len(p)} intervals where gold has {len(g)}"
    remaining = list(p)
    for interval in g:
        match = next((q for q in remaining if _same_interval(interval, q, judge)), None)
        if match is None:
            return False, "intervals differ (endpoints or bracket types)"
        remaining.remove(match)
    return True, "equal: same interval(s)"


def _interval_list(shape: Shape) -> tuple | None:
    if shape.kind == "interval":
        return shape.items
    if shape.kind in ("pair", "bracket") and len(shape.items) == 2:
        opened = shape.kind == "pair"  # gold "(1, 2)" next to "1 < x < 2" is an open interval
        return ((shape.items[0], shape.items[1], opened, opened),)
    return None


def _same_interval(g: tuple, p: tuple, judge: Judge) -> bool:
    g_lo, g_hi, g_lopen, g_ropen = g
    p_lo, p_hi, p_lopen, p_ropen = p
    # A bracket at an infinite end is a notation slip, not a different set.
    if g_lopen != p_lopen and not _infinity_sign(g_lo):
        return False
    if g_ropen != p_ropen and not _infinity_sign(g_hi):
        return False
    return same(g_lo, p_lo, judge) and same(g_hi, p_hi, judge)


def _matrix(gold: Shape, pred: Shape, judge: Judge) -> tuple[bool, str]:
    if gold.kind == pred.kind == "matrix":
        g_rows, p_rows = gold.items, pred.items
        if (len(g_rows), len(g_rows[0])) != (len(p_rows), len(p_rows[0])):
            return False, "matrix shapes differ"
        g_flat = tuple(x for row in g_rows for x in row)
        p_flat = tuple(x for row in p_rows for x in row)
        return _elementwise(g_flat, p_flat, judge)
    matrix, other = (gold, pred) if gold.kind == "matrix" else (pred, gold)
    rows = matrix.items
    if other.kind in _ORDERED and (len(rows) == 1 or len(rows[0]) == 1):
        flat = tuple(x for row in rows for x in row)  # a vector written as a tuple
        g_items, p_items = (flat, other.items) if matrix is gold else (other.items, flat)
        return _elementwise(g_items, p_items, judge)
    return False, f"{gold.kind} vs {pred.kind}"


def _assignments(gold: Shape, pred: Shape, judge: Judge) -> tuple[bool, str]:
    """"a = 2, b = 3": by name against other assignments, in written order against a tuple."""
    if gold.kind == pred.kind:
        g_map = dict(zip(gold.variable.split("|"), gold.items))
        p_map = dict(zip(pred.variable.split("|"), pred.items))
        if set(g_map) != set(p_map):
            return False, "different variables"
        if all(same(g_map[k], p_map[k], judge) for k in g_map):
            return True, f"equal: same {len(g_map)} named values"
        return False, "named values differ"
    other = pred if gold.kind == "assignments" else gold
    if other.kind in ("tuple", "pair", "bracket"):
        return _elementwise(gold.items, pred.items, judge)
    return False, f"{gold.kind} vs {pred.kind}"


def _ratio(gold: Shape, pred: Shape, judge: Judge) -> tuple[bool, str]:
    """a:b = c:d when a*d = b*c (for every part); a two-part ratio also equals the number a/b."""
    if gold.kind == pred.kind == "ratio":
        if len(gold.items) != len(pred.items):
            return False, f"{len(pred.items)}-part ratio where gold has {len(gold.items)}"
        g0, p0 = gold.items[0], pred.items[0]
        for g, p in zip(gold.items[1:], pred.items[1:]):
            if not same(Node("mul", (g, p0)), Node("mul", (p, g0)), judge):
                return False, "ratios differ"
        return True, "equal: same ratio"
    ratio, other = (gold, pred) if gold.kind == "ratio" else (pred, gold)
    if len(ratio.items) == 2 and other.kind == "scalar":
        if same(Node("div", ratio.items), other.items[0], judge):
            return True, "equal: the ratio's value"
        return False, "not equal"
    return False, f"{gold.kind} vs {pred.kind}"


def _equation(gold: Shape, pred: Shape, judge: Judge) -> tuple[bool, str]:
    g, p = _as_equation(gold), _as_equation(pred)
    if g is None or p is None:
        return False, f"{gold.kind} vs {pred.kind}: an equation and a value"
    if judge.same_equation(Node("rel", g, value=("=",)), Node("rel", p, value=("=",))):
        return True, "equivalent equations"
    return False, "equations differ"


def _as_equation(shape: Shape) -> tuple | None:
    if shape.kind == "equation":
        return shape.items
    if shape.kind == "scalar" and shape.variable.isidentifier():
        return (Node("sym", value=shape.variable), shape.items[0])
    return None
