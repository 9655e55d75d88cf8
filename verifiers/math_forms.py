"""The answer forms the recursive-descent parser (verifiers/math_parse.py) reads with more
than one token of look-ahead: mixed numbers, number literals with a repeating bar, set-builder
notation and matrices. Each takes the parser and moves its position like a grammar rule.
"""

from __future__ import annotations

from fractions import Fraction

from verifiers.math_tokens import Node, ParseError, Token, num

SEPARATORS = {",", ";", "or", "and"}
"""Tokens between the items of a list (the parser in verifiers/math_parse.py uses these too)."""
RELATIONS = {"=", "<", ">", "<=", ">=", "!=", "in", "approx"}
"""Relation operators, as the tokenizer names them."""
_CLOSERS = {")", "]", "\\}", "}", "|", "&", "\\\\", "rfloor", "rceil"}


def mixed_number(parser) -> Node | None:
    """2\\frac{1}{3} or "2 1/3": a whole number and a proper fraction of literals."""
    first, second = parser.peek(), parser.peek(1)
    if first is None or second is None or first.kind != "num" or not first.text.isdigit():
        return None
    if second.kind == "cmd" and second.text == "frac":
        save = parser.pos
        parser.pos += 2
        try:
            top, bottom = parser.frac_argument(), parser.frac_argument()
        except ParseError:
            parser.pos = save
            return None
        if (_is_int(top) and _is_int(bottom) and bottom.value != 0
                and ends_operand(parser) and starts_operand(parser, save)):
            return num(Fraction(int(first.text)) + top.value / bottom.value)
        parser.pos = save
        return None
    third, fourth = parser.peek(2), parser.peek(3)
    if (second.kind == "num" and second.space_before and second.text.isdigit()
            and third is not None and third.text == "/" and fourth is not None
            and fourth.kind == "num" and fourth.text.isdigit() and int(fourth.text) != 0):
        parser.pos += 4
        return num(Fraction(int(first.text)) + Fraction(int(second.text), int(fourth.text)))
    return None


def ends_operand(parser) -> bool:
    tok = parser.peek()
    return tok is None or tok.kind in ("op", "word", "end") and (
        tok.text in SEPARATORS or tok.text in RELATIONS or tok.text in _CLOSERS)


def starts_operand(parser, at: int) -> bool:
    """A mixed number stands alone: "x = 2\\frac13" yes, "y 2\\frac13" or "-2\\frac13" no."""
    if at == 0:
        return True
    tok = parser.tokens[at - 1]
    if tok.kind == "op" and tok.text == "-":
        return starts_operand(parser, at - 1)
    return tok.kind in ("op", "word", "begin") and (
        tok.text in SEPARATORS or tok.text in RELATIONS or tok.text in ("(", "[", "{", "\\{", "&"))


def number(parser, tok: Token) -> Node:
    text = tok.text
    if parser.at("cmd", "overline"):
        if "." not in text or "e" in text.lower():
            raise ParseError("a repeating bar needs a decimal number")
        parser.take()
        repeat = braced_digits(parser)
        return num(_repeating(text, repeat))
    mantissa, _, exp = text.lower().partition("e")
    value = Fraction(mantissa) if "." not in mantissa or mantissa.strip(".") else None
    if value is None:
        raise ParseError(f"bad number {text!r}")
    if exp:
        if abs(int(exp)) > 400:
            raise ParseError("exponent too large")
        value *= Fraction(10) ** int(exp)
    return num(value, decimal=text if "." in mantissa else "")


def braced_digits(parser) -> str:
    if parser.at("op", "{"):
        parser.take()
        digits = ""
        while parser.at("num"):
            digits += parser.take().text
        parser.expect("}")
    else:
        digits = parser.take().text if parser.at("num") else ""
    if not digits.isdigit():
        raise ParseError("a repeating bar must hold digits")
    return digits


def set_builder(parser) -> Node | None:
    """"\\{x \\mid 0 < x \\le 1\\}" is its condition (read as an interval later); a domain
    other than the reals ("x \\in [0, 5] : ...") joins the condition with "and"."""
    save = parser.pos
    try:
        head = parser.relation()
    except ParseError:
        head = None
    bar = parser.peek()
    named = head is not None and (head.kind == "sym" or head.kind == "rel" and head.value == ("in",)
                                  and head.args[0].kind == "sym")
    if not named or bar is None or bar.kind != "op" or bar.text not in ("|", ":"):
        parser.pos = save
        return None
    parser.take()
    items, seps = parser.items(stop={"\\}"})
    parser.expect("\\}")
    if head.kind == "rel" and not _whole_line(head.args[1]):
        items, seps = [head, *items], ["and", *seps]
    if len(items) == 1:
        return items[0]
    return Node("seq", tuple(items), value=("", ""), decimal="|".join(seps))


def matrix(parser, env: str) -> Node:
    if env not in ("pmatrix", "bmatrix", "matrix", "smallmatrix", "array", "Bmatrix"):
        raise ParseError(f"unsupported environment {env}")
    rows: list[tuple[Node, ...]] = []
    row: list[Node] = []
    while True:
        if parser.at("end"):
            parser.take()
            break
        row.append(parser.relation())
        tok = parser.take()
        if tok.kind == "end":
            break
        if tok.text == "\\\\":
            rows.append(tuple(row))
            row = []
        elif tok.text != "&":
            raise ParseError(f"unexpected {tok.text!r} in a matrix")
    if row:
        rows.append(tuple(row))
    if not rows or len({len(r) for r in rows}) != 1:
        raise ParseError("ragged or empty matrix")
    return Node("matrix", tuple(rows))


def _whole_line(node: Node) -> bool:
    return node.kind in ("interval", "seq") and len(node.args) == 2 \
        and node.args[0] == Node("neg", (Node("const", value="oo"),)) and node.args[1] == Node("const", value="oo")


def _is_int(node: Node) -> bool:
    return node.kind == "num" and node.value.denominator == 1 and not node.decimal


def _repeating(text: str, repeat: str) -> Fraction:
    """0.1\\overline{6} -> 1/6: fixed part plus the repeating digits as a geometric series."""
    whole, _, fixed = text.partition(".")
    shift = Fraction(10) ** len(fixed)
    base = Fraction(int(whole or "0") * 10 ** len(fixed) + int(fixed or "0"), 1) / shift
    cycle = Fraction(int(repeat), 10 ** len(repeat) - 1) / shift
    return base + cycle
