"""What an answer *is*: a number, a set of solutions, a tuple, an interval, a matrix, an
equation, a ratio; and what a name on the left of "=" means.

Gold is trusted and sets the expectations; verifiers/math_compare.py matches shapes item by
item. Reading rules that live here:

- "name = value" is the value with a label: ``x = 3``, ``f(2) = 1``, ``f(x) = 2x + 1``,
  ``(p, q) = (3, 2)``, ``a + b = 7`` (the left side only names things: letters, a function
  applied to letters or numbers, sums of those; the value does not mention the names). Any other
  equation (``2x = 6``, ``x + y = 3x``) is an equation.
- A chain ``x = 2 + 1 = 3`` reads as its last value; a chain that ends in ``\\approx``
  (``\\frac{22}{7} \\approx 3.14``) may also match by the exact value before it.
- ``a \\pm b`` is the two values; a scalar times a matrix is the scaled matrix.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from verifiers.math_parse import Node
from verifiers.math_sets import as_intervals, inequality, intersection
from verifiers.math_value import MAX_ITEMS, TooLarge


@dataclass(frozen=True)
class Shape:
    kind: str
    """scalar, solutions, assignments, set, tuple, pair, bracket, interval, matrix, equation,
    ratio."""
    items: tuple = ()
    """scalar: (node,); solutions/set/tuple/pair/bracket/ratio: item nodes; interval: tuple of
    (lo, hi, left_open, right_open); matrix: rows; equation: (lhs, rhs)."""
    variable: str = ""
    """For "x = 3" style answers: what the left side names ("x", "f(2)", "(p,q)"); for
    assignments the names joined by "|"."""
    alternatives: tuple = ()
    """Other shapes the same answer may be read as: the exact value before a final "≈"."""


def shape_of(node: Node) -> Shape:
    kind = node.kind
    if kind == "seq":
        return _sequence(node)
    if kind in ("interval", "union", "setminus") or inequality(node):
        intervals = as_intervals((node,))
        if intervals is not None:
            return Shape("interval", intervals)
    if kind == "matrix":
        return Shape("matrix", node.args)
    scaled = _scaled_matrix(node)
    if scaled is not None:
        return Shape("matrix", scaled)
    if kind == "ratio":
        return Shape("ratio", node.args)
    expanded = _expand_pm(node)
    if len(expanded) > 1:
        return _solutions(expanded)
    if kind == "rel":
        return _relation(node)
    if kind == "const" and node.value == "empty":
        return Shape("set", ())
    return Shape("scalar", (node,))


def _sequence(node: Node) -> Shape:
    opening, _ = node.value
    items = tuple(_expand_pm(item) for item in node.args)
    flat = tuple(x for group in items for x in group)
    if len(flat) > MAX_ITEMS:
        raise TooLarge(f"more than {MAX_ITEMS} items")
    if opening == "\\{":
        return Shape("set", flat)
    if opening == "":
        if set(node.decimal.split("|")) == {"and"} and all(inequality(a) for a in node.args):
            intervals = intersection(node.args)  # "x > -2 and x < 3"
            if intervals is not None:
                return Shape("interval", intervals)
        intervals = as_intervals(node.args)
        # "(1,2), (3,4)" is a list of points; "x < -1 or x > 3" is a union.
        if intervals is not None and any(a.kind != "seq" for a in node.args):
            return Shape("interval", intervals)
        return _solutions(flat)
    if opening == "(":
        return Shape("pair" if len(flat) == 2 else "tuple", flat)
    return Shape("bracket", flat)


def _relation(node: Node) -> Shape:
    args, ops = node.args, node.value
    if not set(ops) <= {"=", "approx"}:
        raise TooLarge("unsupported relation")  # x != 2, x = 3 < 4: rejected with a reason
    heads = _label_heads(args[0])
    named = heads is not None and not any(_mentions(v, h) for v in args[1:] for h in heads)
    if named or not any(_has_symbol(a) for a in args):  # "6 \\times 23 = 138" reads as 138
        shape = shape_of(args[-1])
        alternatives = ()
        if ops[-1] == "approx" and len(args) >= (3 if named else 2):
            alternatives = (shape_of(args[-2]),)  # "22/7 ≈ 3.14": the exact value may match too
        label = _label_text(args[0]) if named else ""
        return replace(shape, variable=label or shape.variable, alternatives=alternatives)
    if ops == ("=",):
        return Shape("equation", args)
    raise TooLarge("unsupported relation")


def _label_heads(node: Node) -> set[str] | None:
    """The names a left side introduces, or None when it is not a pure label."""
    kind = node.kind
    if kind == "sym":
        return {node.value}
    if kind == "mul":
        factors = _factors(node)
        if factors[0].kind == "sym" and all(_plain_argument(f) for f in factors[1:]):
            return {factors[0].value}  # f(2), f(x), AB, m\angle ABC
        return None
    if kind == "abs":
        return _label_heads(node.args[0])  # |AB|
    if kind == "add":
        left, right = node.args
        right = right.args[0] if right.kind == "neg" else right
        a, b = _label_heads(left), _label_heads(right)
        return a | b if a is not None and b is not None else None
    if kind == "seq" and node.value == ("(", ")") and all(a.kind == "sym" for a in node.args):
        return {a.value for a in node.args}
    return None


def _factors(node: Node) -> list[Node]:
    if node.kind != "mul":
        return [node]
    return _factors(node.args[0]) + _factors(node.args[1])


def _plain_argument(node: Node) -> bool:
    if node.kind in ("sym", "num"):
        return True
    return node.kind == "seq" and node.value == ("(", ")") and all(a.kind in ("sym", "num") for a in node.args)


def _label_text(node: Node) -> str:
    kind = node.kind
    if kind == "sym":
        return str(node.value)
    if kind == "num":
        return str(node.value)
    if kind == "mul":
        return f"{_label_text(node.args[0])}({_label_text(node.args[1])})"
    if kind == "abs":
        return f"|{_label_text(node.args[0])}|"
    if kind == "add":
        right = node.args[1]
        sign, right = ("-", right.args[0]) if right.kind == "neg" else ("+", right)
        return f"{_label_text(node.args[0])}{sign}{_label_text(right)}"
    if kind == "seq":
        return "(" + ",".join(_label_text(a) for a in node.args) + ")"
    return kind


def _scaled_matrix(node: Node) -> tuple | None:
    """2 * M, M * 2, M / 2 and -M as the matrix of scaled entries."""
    kind, args = node.kind, node.args
    if kind == "neg" and args[0].kind == "matrix":
        return tuple(tuple(Node("neg", (x,)) for x in row) for row in args[0].args)
    if kind not in ("mul", "div") or [a.kind for a in args].count("matrix") != 1:
        return None
    matrix, factor = (args[1], args[0]) if args[1].kind == "matrix" else (args[0], args[1])
    if kind == "div" and matrix is not args[0]:
        return None
    op = "mul" if kind == "mul" else "div"
    return tuple(tuple(Node(op, (x, factor)) for x in row) for row in matrix.args)


def _solutions(items: tuple[Node, ...]) -> Shape:
    """A bare list "2, -2" / "x = 2 or x = -2": values, order-free, one variable name."""
    values, names = [], []
    for item in items:
        if item.kind == "rel" and item.value == ("=",) and item.args[0].kind == "sym":
            names.append(item.args[0].value)
            item = item.args[1]
        values.append(item)
    bases = {name.split("_")[0] for name in names}
    if len(values) > 1 and len(names) == len(values) == len(set(names)) and not (len(bases) == 1 and "_" in names[0]):
        # "a = 2, b = 3": one value per name, matched by name (or in order against a tuple)
        return Shape("assignments", tuple(values), variable="|".join(names))
    # "x_1 = 1, x_2 = 2" names the solutions of one variable x
    variable = names[0] if len(set(names)) == 1 else (bases.pop() if len(bases) == 1 and names else "")
    return Shape("solutions", tuple(values), variable=variable)


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


def _has_symbol(node: Node) -> bool:
    if node.kind == "sym":
        return True
    return any(isinstance(a, Node) and _has_symbol(a) for a in node.args)
