"""Tokens of LaTeX-ish / plain math answers, and the tree `Node`s the parser in
verifiers/math_parse.py builds from them.

One anchored regex per step (no nested quantifiers, so no catastrophic backtracking); a
character outside the grammar (a Cyrillic look-alike, binary junk) is a ParseError at once.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction

MAX_DIGITS = 200
"""Digits in one number literal."""
MAX_TOKENS = 600


class ParseError(ValueError):
    """The answer is not in the accepted grammar (the message says where)."""


@dataclass(frozen=True)
class Token:
    kind: str  # num, name, const, func, cmd, op, word, begin, end
    text: str
    space_before: bool = False


_FUNCS = {
    "sin", "cos", "tan", "cot", "sec", "csc", "arcsin", "arccos", "arctan", "sinh", "cosh",
    "tanh", "log", "ln", "exp", "lg",
}
_GREEK = {
    "alpha", "beta", "gamma", "delta", "epsilon", "varepsilon", "zeta", "eta", "theta",
    "vartheta", "iota", "kappa", "lambda", "mu", "nu", "xi", "rho", "sigma", "tau", "upsilon",
    "phi", "varphi", "chi", "psi", "omega", "Gamma", "Delta", "Theta", "Lambda", "Xi", "Sigma",
    "Phi", "Psi", "Omega", "angle", "measuredangle", "triangle",
}
_COMMANDS = {
    "cdot": ("op", "*"), "times": ("op", "*"), "ast": ("op", "*"), "div": ("op", "/"),
    "pm": ("op", "pm"), "mp": ("op", "mp"), "le": ("op", "<="), "leq": ("op", "<="),
    "leqslant": ("op", "<="), "ge": ("op", ">="), "geq": ("op", ">="), "geqslant": ("op", ">="),
    "lt": ("op", "<"), "gt": ("op", ">"), "ne": ("op", "!="), "neq": ("op", "!="),
    "in": ("op", "in"), "cup": ("op", "cup"), "pi": ("const", "pi"), "infty": ("const", "oo"),
    "infin": ("const", "oo"), "emptyset": ("const", "empty"), "varnothing": ("const", "empty"),
    "frac": ("cmd", "frac"), "sqrt": ("cmd", "sqrt"), "binom": ("cmd", "binom"),
    "overline": ("cmd", "overline"), "bar": ("cmd", "overline"), "dot": ("cmd", "overline"),
    "lbrace": ("op", "\\{"), "rbrace": ("op", "\\}"), "langle": ("op", "("), "rangle": ("op", ")"),
    "lfloor": ("op", "lfloor"), "rfloor": ("op", "rfloor"), "lceil": ("op", "lceil"),
    "rceil": ("op", "rceil"), "circ": ("op", "circ"), "imath": ("const", "i"),
    "vert": ("op", "|"), "mid": ("op", "|"), "approx": ("op", "approx"), "setminus": ("op", "setminus"),
    "backslash": ("op", "setminus"), "ldots": ("const", "ellipsis"), "dots": ("const", "ellipsis"),
    "cdots": ("const", "ellipsis"), "dotsc": ("const", "ellipsis"), "colon": ("op", ":"),
}
_WORDS = {
    "or": ("word", "or"), "and": ("word", "and"), "pi": ("const", "pi"), "sqrt": ("cmd", "sqrt"),
    "inf": ("const", "oo"), "infinity": ("const", "oo"), "oo": ("const", "oo"),
}
_TOKEN = re.compile(
    r"(?P<space>\s+|\\,)"
    r"|(?P<dots>\.\.\.+)"
    r"|(?P<num>\d+(?:\.(?!\.)\d*)?(?:[eE][-+]?\d+(?![.\d]))?|\.\d+)"
    r"|(?P<begin>\\begin\s*\{\s*[a-zA-Z*]+\s*\}(?:\s*\{[^{}]*\})?)"
    r"|(?P<end>\\end\s*\{\s*[a-zA-Z*]+\s*\})"
    r"|(?P<cmd>\\[a-zA-Z]+|\\[{}|\\])"
    r"|(?P<word>[a-zA-Z]+)"
    r"|(?P<op><=|>=|!=|\*\*|[-+*/^_=<>()\[\]{},;|&!:'])"
)


def tokenize(text: str) -> list[Token]:
    tokens: list[Token] = []
    pos, space = 0, False
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None:
            raise ParseError(f"unexpected character {text[pos]!r} at {pos}")
        pos = match.end()
        kind = match.lastgroup
        raw = match.group()
        if kind == "space":
            space = True
            continue
        tokens.extend(_classify(kind, raw, space, text))
        space = False
        if len(tokens) > MAX_TOKENS:
            raise ParseError("answer has too many tokens")
    return tokens


def _classify(kind: str, raw: str, space: bool, whole: str) -> list[Token]:
    if kind == "num":
        if sum(c.isdigit() for c in raw) > MAX_DIGITS:
            raise ParseError(f"number longer than {MAX_DIGITS} digits")
        return [Token("num", raw, space)]
    if kind == "dots":
        return [Token("const", "ellipsis", space)]
    if kind in ("begin", "end"):
        env = re.search(r"\{\s*([a-zA-Z*]+)", raw).group(1)
        return [Token(kind, env, space)]
    if kind == "cmd":
        name = raw[1:]
        if name in ("{", "}"):
            return [Token("op", "\\" + name, space)]
        if name == "\\":
            return [Token("op", "\\\\", space)]
        if name == "|":
            return [Token("op", "|", space)]
        if name in _COMMANDS:
            k, v = _COMMANDS[name]
            return [Token(k, v, space)]
        if name in _FUNCS:
            return [Token("func", name, space)]
        if name in _GREEK:
            return [Token("name", name, space)]
        raise ParseError(f"unknown command \\{name}")
    if kind == "word":
        return _classify_word(raw, space, whole)
    if raw == "**":
        return [Token("op", "^", space)]
    return [Token("op", raw, space)]


def _classify_word(word: str, space: bool, whole: str) -> list[Token]:
    lower = word.lower()
    if lower in _WORDS:
        k, v = _WORDS[lower]
        return [Token(k, v, space)]
    if lower in _FUNCS:
        return [Token("func", lower, space)]
    if len(word) == 1:
        return [_letter(word, space)]
    # "2xy" is a product of single-letter names; "none" / "yes" are words, not x*y*z.
    if len(word) <= 3 and re.search(r"[\d\\^+*/=()\-]", whole):
        return [_letter(c, space and i == 0) for i, c in enumerate(word)]
    return [Token("word", word, space)]


def _letter(c: str, space: bool) -> Token:
    if c in ("e", "i"):
        return Token("const", c, space)
    return Token("name", c, space)


@dataclass(frozen=True)
class Node:
    kind: str
    """num, sym, const, add, mul, pow, neg, div, pm, func, sqrt, binom, fact, abs,
    rel, seq, interval, union, matrix."""
    args: tuple = ()
    value: object = None
    """num: Fraction; sym/const/func: name; rel: tuple of operators; seq: (open, close);
    interval: (left_open, right_open)."""
    decimal: str = ""
    """For num: the literal as written when it had a decimal point (drives the
    approximation policy), else "". For seq: the separators between items ("," or "or"),
    joined by "|"."""


def num(value: Fraction, decimal: str = "") -> Node:
    return Node("num", value=value, decimal=decimal)
