"""Tokenizer and recursive-descent parser for LaTeX-ish / plain math answers.

Model text is never handed to eval, sympify or parse_expr: this parser accepts a small,
explicit grammar and builds a plain tree of `Node`s (no sympy here, so plain numbers can be
compared with `fractions.Fraction` without importing it). Hostile input is bounded by the
caller's length cap, a nesting-depth cap and a digit cap per number; exponent sizes are
checked where the tree is evaluated (verifiers/math_value.py, verifiers/math_sympy.py).

Grammar (lowest precedence first):
    answer   := item ((',' | ';' | 'or' | 'and') item)*
    item     := ratio (('\\cup' | '\\setminus') ratio)*
    ratio    := relation (':' relation)*
    relation := expr (relop expr)*            relop: = < > \\le \\ge \\ne \\in \\approx
    expr     := term (('+' | '-' | '\\pm' | '\\mp') term)*
    term     := unary (('*' | '/' | '\\cdot' | '\\times' | '\\div' | implicit) unary)*
    unary    := ('-' | '+' | '\\pm') unary | power
    power    := postfix ('^' exponent)?
    postfix  := primary '!'*
    primary  := number | name | constant (\\pi, \\infty, "...") | function | \\frac | \\sqrt
                | \\binom | group | '|' expr '|' | matrix | set | set-builder (math_forms.py)
"""

from __future__ import annotations

from fractions import Fraction

from verifiers import math_forms as forms
from verifiers.math_forms import RELATIONS, SEPARATORS
from verifiers.math_tokens import Node, ParseError, Token, num, tokenize

MAX_DEPTH = 40
"""Deepest nesting of brackets / operators accepted; deeper text is rejected, not recursed."""

__all__ = ["MAX_DEPTH", "Node", "ParseError", "num", "parse"]


def parse(text: str) -> Node:
    """Parse one cleaned answer into a tree. Raises ParseError."""
    tokens = tokenize(text)
    if not tokens:
        raise ParseError("empty answer")
    parser = _Parser(tokens)
    node = parser.answer()
    if parser.pos != len(tokens):
        raise ParseError(f"unexpected {tokens[parser.pos].text!r}")
    return node


class _Parser:
    def __init__(self, tokens: list[Token]):
        self.tokens = tokens
        self.pos = 0
        self.depth = 0

    # -- helpers
    def peek(self, offset: int = 0) -> Token | None:
        at = self.pos + offset
        return self.tokens[at] if at < len(self.tokens) else None

    def at(self, kind: str, text: str | None = None) -> bool:
        tok = self.peek()
        return tok is not None and tok.kind == kind and (text is None or tok.text == text)

    def take(self) -> Token:
        tok = self.peek()
        if tok is None:
            raise ParseError("unexpected end of answer")
        self.pos += 1
        return tok

    def expect(self, text: str) -> None:
        tok = self.take()
        if tok.text != text or tok.kind not in ("op", "word"):
            raise ParseError(f"expected {text!r}, found {tok.text!r}")

    def enter(self) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise ParseError(f"nesting deeper than {MAX_DEPTH}")

    # -- grammar
    def answer(self) -> Node:
        items, seps = self.items(stop=set())
        if len(items) == 1:
            return items[0]
        return Node("seq", tuple(items), value=("", ""), decimal="|".join(seps))

    def items(self, stop: set[str]) -> tuple[list[Node], list[str]]:
        items = [self.item()]
        seps: list[str] = []
        while True:
            tok = self.peek()
            if tok is None or tok.text in stop or tok.kind not in ("op", "word"):
                break
            if tok.text not in SEPARATORS:
                break
            self.take()
            seps.append(tok.text)
            if self.peek() is None or self.peek().text in stop:
                break  # trailing comma
            items.append(self.item())
        return items, seps

    def item(self) -> Node:
        parts = [self.ratio()]
        while self.at("op", "cup") or self.at("op", "setminus"):
            if self.take().text == "setminus":
                whole = parts[0] if len(parts) == 1 else Node("union", tuple(parts))
                parts = [Node("setminus", (whole, self.ratio()))]
            else:
                parts.append(self.ratio())
        return parts[0] if len(parts) == 1 else Node("union", tuple(parts))

    def ratio(self) -> Node:
        parts = [self.relation()]
        while self.at("op", ":"):
            self.take()
            parts.append(self.relation())
        return parts[0] if len(parts) == 1 else Node("ratio", tuple(parts))

    def relation(self) -> Node:
        exprs = [self.expr()]
        ops = []
        while self.at("op") and self.peek().text in RELATIONS:
            ops.append(self.take().text)
            exprs.append(self.expr())
        if not ops:
            return exprs[0]
        return Node("rel", tuple(exprs), value=tuple(ops))

    def expr(self) -> Node:
        self.enter()
        node = self.term()
        while self.at("op") and self.peek().text in ("+", "-", "pm", "mp"):
            op = self.take().text
            right = self.term()
            if op == "+":
                node = Node("add", (node, right))
            elif op == "-":
                node = Node("add", (node, Node("neg", (right,))))
            elif op == "pm":
                node = Node("pm", (node, right))
            else:
                node = Node("pm", (node, Node("neg", (right,))))
        self.depth -= 1
        return node

    def term(self) -> Node:
        node = forms.mixed_number(self) or self.unary()
        while True:
            tok = self.peek()
            if tok is None:
                break
            if tok.kind == "op" and tok.text in ("*", "/"):
                self.take()
                right = self.unary()
                node = Node("mul", (node, right)) if tok.text == "*" else Node("div", (node, right))
            elif self.starts_implicit_factor(tok):
                node = Node("mul", (node, self.power()))
            else:
                break
        return node

    def starts_implicit_factor(self, tok: Token) -> bool:
        if tok.kind in ("name", "const", "func"):
            return True
        if tok.kind == "cmd" and tok.text in ("frac", "sqrt", "binom") or tok.kind == "begin":
            return True  # "2\\begin{pmatrix}...": a scalar times a matrix
        return tok.kind == "op" and tok.text == "(" and not tok.space_before

    def unary(self) -> Node:
        tok = self.peek()
        if tok is not None and tok.kind == "op" and tok.text in ("-", "+", "pm", "mp"):
            self.take()
            self.enter()
            operand = (forms.mixed_number(self) if tok.text == "-" else None) or self.unary()
            self.depth -= 1
            if tok.text == "-":
                return Node("neg", (operand,))
            if tok.text in ("pm", "mp"):
                return Node("pm", (num(Fraction(0)), operand))
            return operand
        return self.power()

    def power(self) -> Node:
        base = self.postfix()
        if self.at("op", "^"):
            self.take()
            exponent = self.exponent()
            if exponent is None:
                return base
            return Node("pow", (base, exponent))
        return base

    def exponent(self) -> Node | None:
        if self.at("op", "{"):
            self.take()
            if self.at("op", "circ"):
                raise ParseError("degree mark inside an expression")
            self.enter()
            node = self.expr()
            self.depth -= 1
            self.expect("}")
            return node
        if self.at("op", "circ"):
            raise ParseError("degree mark inside an expression")
        tok = self.peek()
        if tok is not None and tok.kind == "op" and tok.text in ("-", "+"):
            return self.unary()
        return self.postfix()

    def postfix(self) -> Node:
        node = self.primary()
        while self.at("op", "!"):
            self.take()
            node = Node("fact", (node,))
        return node

    def primary(self) -> Node:
        self.enter()
        try:
            return self._primary()
        finally:
            self.depth -= 1

    def _primary(self) -> Node:
        tok = self.take()
        if tok.kind == "num":
            return forms.number(self, tok)
        if tok.kind == "name":
            return Node("sym", value=tok.text + self.subscript())
        if tok.kind == "const":
            return Node("const", value=tok.text)
        if tok.kind == "func":
            return self.function(tok.text)
        if tok.kind == "cmd":
            return self.command(tok.text)
        if tok.kind == "begin":
            return forms.matrix(self, tok.text)
        if tok.kind == "op":
            if tok.text in ("(", "["):
                return self.bracketed(tok.text)
            if tok.text == "\\{":
                return self.braced_set()
            if tok.text == "{":
                return self.group()
            if tok.text == "|":
                inner = self.expr()
                self.expect("|")
                return Node("abs", (inner,))
            if tok.text in ("lfloor", "lceil"):
                inner = self.expr()
                closing = self.take()
                want = "rfloor" if tok.text == "lfloor" else "rceil"
                if closing.text != want:
                    raise ParseError(f"expected {want}")
                return Node("func", (inner,), value="floor" if want == "rfloor" else "ceiling")
        raise ParseError(f"unexpected {tok.text!r}")

    def subscript(self) -> str:
        if not self.at("op", "_"):
            return ""
        self.take()
        if self.at("op", "{"):
            self.take()
            parts = []
            while not self.at("op", "}"):
                parts.append(self.take().text)
                if len(parts) > 10:
                    raise ParseError("subscript too long")
            self.take()
            return "_" + "".join(parts)
        return "_" + self.take().text

    def function(self, name: str) -> Node:
        power = None
        base = None
        if name == "log" and self.at("op", "_"):
            self.take()
            if self.at("op", "{"):
                self.take()
                base = self.group()
            else:
                base = self.postfix()
        if self.at("op", "^"):
            self.take()
            power = self.exponent()
        if self.at("op", "(") or self.at("op", "{"):
            opening = self.take().text
            arg = self.expr()
            self.expect(")" if opening == "(" else "}")
        else:
            arg = self.power()
        node = Node("func", (arg,) if base is None else (arg, base), value=name)
        if power is not None:
            node = Node("pow", (node, power))
        return node

    def command(self, name: str) -> Node:
        if name == "frac":
            top = self.frac_argument()
            bottom = self.frac_argument()
            return Node("div", (top, bottom))
        if name == "binom":
            return Node("binom", (self.frac_argument(), self.frac_argument()))
        if name == "sqrt":
            index = None
            if self.at("op", "["):
                self.take()
                index = self.expr()
                self.expect("]")
            radicand = self.frac_argument()
            return Node("sqrt", (radicand,) if index is None else (radicand, index))
        raise ParseError(f"unexpected \\{name}")

    def frac_argument(self) -> Node:
        """A braced group, or one token: \\frac12 is 1/2 (one digit per argument)."""
        if self.at("op", "{"):
            self.take()
            self.enter()
            node = self.expr()
            self.depth -= 1
            self.expect("}")
            return node
        tok = self.peek()
        if tok is not None and tok.kind == "num" and tok.text.isdigit() and len(tok.text) > 1:
            # Split the literal: the first digit is this argument, the rest stays.
            self.tokens[self.pos] = Token("num", tok.text[1:], False)
            return num(Fraction(int(tok.text[0])))
        return self.postfix()

    def group(self) -> Node:
        items, seps = self.items(stop={"}"})
        self.expect("}")
        if len(items) == 1:
            return items[0]
        return Node("seq", tuple(items), value=("\\{", "\\}"), decimal="|".join(seps))

    def braced_set(self) -> Node:
        if self.at("op", "\\}"):
            self.take()
            return Node("seq", (), value=("\\{", "\\}"))
        condition = forms.set_builder(self)
        if condition is not None:
            return condition
        items, seps = self.items(stop={"\\}"})
        self.expect("\\}")
        return Node("seq", tuple(items), value=("\\{", "\\}"), decimal="|".join(seps))

    def bracketed(self, opening: str) -> Node:
        items, seps = self.items(stop={")", "]"})
        closing = self.take()
        if closing.text not in (")", "]"):
            raise ParseError(f"expected a closing bracket, found {closing.text!r}")
        if len(items) == 1 and (opening == "(" and closing.text == ")" or items[0].kind == "matrix"):
            return items[0]  # "\\left[\\begin{array}...\\end{array}\\right]" is the matrix itself
        if len(items) == 2 and opening + closing.text in ("(]", "[)"):
            return Node("interval", tuple(items), value=(opening == "(", closing.text == ")"))
        if opening != closing.text.replace(")", "(").replace("]", "["):
            raise ParseError("mismatched brackets")
        return Node("seq", tuple(items), value=(opening, closing.text), decimal="|".join(seps))


