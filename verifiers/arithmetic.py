"""Game of 24 and Countdown: reach a target with the given numbers and + - * /.

They are judged by evaluating the model's expression, not by comparing strings: any expression
that uses the given numbers by the rules and hits the target is right. Expressions are parsed with Python's `ast` and an explicit whitelist (never `eval`):

    allowed   + - * / between sub-expressions, parentheses, non-negative integer literals
    rejected  unary minus/plus (a given number is used as it is, not negated), powers, floats,
              names, calls, anything else

Arithmetic is exact (`fractions.Fraction`), so 8/(3-8/3) = 24 holds and 1/3*3 is exactly 1.
"""

from __future__ import annotations

import ast
import re
import unicodedata
from collections import Counter
from fractions import Fraction
from typing import Any, Mapping

from verifiers.base import Verdict
from verifiers.extract import final_answer
from verifiers.puzzle_reading import as_decimal, as_integer, is_number, last_lines, meta_of, verdict

MAX_EXPRESSION = 300
"""Characters; a Game of 24 or Countdown expression is a few dozen. Longer text is not parsed."""

_SYMBOLS = {
    "×": "*", "·": "*", "⋅": "*", "∗": "*", "✕": "*", "✖": "*",
    "÷": "/", "∕": "/", "⁄": "/",
    "−": "-", "–": "-", "—": "-", "‐": "-", "‑": "-",
    "[": "(", "]": ")", "{": "(", "}": ")",
}
_LATEX = [
    (r"\\(?:times|cdot|ast)\b", "*"), (r"\\div\b", "/"), (r"\\left|\\right|\\!|\\,|\\;", ""),
    (r"\\[()\[\]]", ""), (r"\$", ""), (r"\\(?:text|mathrm)\{([^{}]*)\}", r"\1"),
]
_FRAC = re.compile(r"\\[dt]?frac\s*\{([^{}]*)\}\s*\{([^{}]*)\}")
_TIMES_X = re.compile(r"(?<=[\d)])\s*[xX]\s*(?=[\d(])")
_IMPLICIT = re.compile(r"(?<=[\d)])\s*(?=\()|(?<=\))\s*(?=\d)")
_OPERATORS = (ast.Add, ast.Sub, ast.Mult, ast.Div)


class ExpressionError(ValueError):
    """The text is not an allowed arithmetic expression; the message says why."""


def evaluate(expression: str) -> tuple[Fraction, list[int]]:
    """(exact value, integer literals used) of an arithmetic expression.

    Raises ExpressionError for disallowed syntax and ZeroDivisionError for division by zero.
    """
    if len(expression) > MAX_EXPRESSION * 4:  # checked before normalizing, which truncates
        raise ExpressionError(f"expression longer than {MAX_EXPRESSION} characters")
    text = normalize_expression(expression)
    if len(text) > MAX_EXPRESSION:
        raise ExpressionError(f"expression longer than {MAX_EXPRESSION} characters")
    if not text:
        raise ExpressionError("empty expression")
    stray = re.search(r"[^\d\s+\-*/().]", text)
    if stray:  # letters would let Python read 0x10, 1e3, 1_0 or names; none is arithmetic here
        raise ExpressionError(f"{stray.group()!r} is not allowed in an arithmetic expression")
    try:
        tree = ast.parse(text, mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError) as e:
        raise ExpressionError(f"not an arithmetic expression: {text[:80]!r}") from e
    numbers: list[int] = []
    return _value(tree.body, numbers), numbers


def normalize_expression(text: str) -> str:
    """Map the ways models write arithmetic (×, ÷, \\times, 3 x 4, (a)(b), brackets) to Python."""
    text = unicodedata.normalize("NFKC", text[: MAX_EXPRESSION * 4])
    for pattern, replacement in _LATEX:
        text = re.sub(pattern, replacement, text)
    for _ in range(8):  # innermost \frac first; eight levels is more than any real answer
        text, count = _FRAC.subn(r"((\1)/(\2))", text)
        if not count:
            break
    text = "".join(_SYMBOLS.get(ch, ch) for ch in text)
    text = _TIMES_X.sub("*", text)
    text = _IMPLICIT.sub("*", text)
    return " ".join(text.split())


def _value(node: ast.AST, numbers: list[int]) -> Fraction:
    if isinstance(node, ast.BinOp) and isinstance(node.op, _OPERATORS):
        left, right = _value(node.left, numbers), _value(node.right, numbers)
        if isinstance(node.op, ast.Add):
            return left + right
        if isinstance(node.op, ast.Sub):
            return left - right
        if isinstance(node.op, ast.Mult):
            return left * right
        if right == 0:
            raise ZeroDivisionError("division by zero")
        return left / right
    if isinstance(node, ast.Constant) and type(node.value) is int:
        numbers.append(node.value)
        return Fraction(node.value)
    if isinstance(node, ast.UnaryOp):
        raise ExpressionError("unary minus/plus is not allowed: use each given number as it is")
    if isinstance(node, ast.BinOp):
        raise ExpressionError(f"operator {type(node.op).__name__} is not allowed (only + - * /)")
    if isinstance(node, ast.Constant):
        raise ExpressionError(f"{node.value!r} is not an integer")
    raise ExpressionError(f"{type(node).__name__} is not allowed in an arithmetic expression")


def _numbers(meta: Mapping[str, Any]) -> list[int]:
    numbers = meta.get("numbers")
    if isinstance(numbers, (str, bytes)) or not isinstance(numbers, (list, tuple)) or not numbers:
        raise ValueError("meta 'numbers' must be a non-empty list of integers")
    if len(numbers) > 20:
        raise ValueError(f"meta 'numbers' has {len(numbers)} entries; at most 20")
    return [as_integer(n, "number") for n in numbers]


class ArithmeticPuzzleVerifier:
    """Reach a target with the given numbers and + - * /.

    game24:    every number exactly once (as a multiset); target 24 unless the problem says.
    countdown: each number at most once, or exactly all when meta["use_all"] is true.
    """

    version = "1"

    def __init__(self, name: str, use_all_default: bool):
        self.name = name
        self.use_all_default = use_all_default

    def verify(self, problem: Mapping[str, Any], completion: str) -> Verdict:
        try:
            numbers, target, use_all = self._rules(problem)
        except ValueError as e:
            return verdict(self, False, f"bad problem: {e}")
        if not isinstance(completion, str):
            return verdict(self, False, "no final answer: completion is not text")
        try:
            candidates = self._candidates(completion, target)
        except ExpressionError as e:
            return verdict(self, False, str(e))
        if not candidates:
            return verdict(self, False, "no expression found")
        first_error = None
        for expression in candidates:  # the first one that parses is the model's expression
            shown = expression[:MAX_EXPRESSION]
            try:
                value, used = evaluate(expression)
                break
            except ZeroDivisionError:
                return verdict(self, False, "division by zero", shown)
            except (ExpressionError, RecursionError) as e:
                first_error = first_error or verdict(self, False, str(e) or "expression nested too deeply", shown)
        else:
            return first_error
        usage = _usage_error(used, numbers, use_all)
        if usage:
            return verdict(self, False, usage, shown)
        if value != target:
            return verdict(self, False, f"expression equals {value}, not {target}", shown)
        return verdict(self, True, f"expression equals {target}", shown)

    def _rules(self, problem: Any) -> tuple[list[int], int, bool]:
        meta = meta_of(problem)
        numbers = _numbers(meta)
        targets = set()
        if meta.get("target") is not None:
            targets.add(as_integer(meta["target"], "target"))
        answer = problem.get("answer")
        if answer not in (None, ""):
            targets.add(_gold_target(answer))
        if len(targets) > 1:
            raise ValueError(f"answer {answer!r} and meta target {meta['target']!r} differ")
        if not targets and self.name != "game24":
            raise ValueError("no target: set meta 'target' or the answer")
        use_all = meta.get("use_all", self.use_all_default)
        return numbers, targets.pop() if targets else 24, bool(use_all)

    def _candidates(self, completion: str, target: int) -> list[str]:
        """Where the model's expression may be, best first: the final answer, then the last lines
        reading "expr = target", then the final answer even when it is a bare number.

        The final answer may be "24" alone ("... = 24. The answer is 24.") or prose ("Done!"),
        with the expression on a line just above. A final answer that states a wrong result
        ("expr = 25") raises ExpressionError: the model's own claim is wrong.
        """
        answer = final_answer(completion)
        candidates = []
        if answer is not None:
            expression = _expression_side(answer, target)
            if expression is not None and not is_number(expression):
                candidates.append(expression)
        for line in last_lines(completion)[:10]:
            if "=" in line and line != answer:
                try:
                    expression = _expression_side(line, target)
                except ExpressionError:
                    continue  # an intermediate step such as "8-4 = 4"
                if expression is not None and not is_number(expression):
                    candidates.append(expression)
        if answer is not None and is_number(answer):
            candidates.append(answer)
        return candidates


def _gold_target(answer: Any) -> int:
    """The target from the gold: "24", or a sample solution "(8-4)*(7-1)" some datasets store."""
    try:
        return as_integer(answer, "answer")
    except ValueError:
        pass
    try:
        value, _ = evaluate(str(answer))
    except (ExpressionError, ZeroDivisionError, RecursionError):
        value = None
    if value is None or value.denominator != 1:
        raise ValueError(f"answer {answer!r} is neither a target number nor an expression for one"[:200])
    return value.numerator


def _expression_side(text: str, target: int) -> str | None:
    """From "expr = 24" (or "24 = expr", or a chain "expr = 4*6 = 24") the expression part.

    Raises ExpressionError when the text states a result other than the target ("expr = 25"):
    the model's own claim is wrong even if the expression happens to be right.
    """
    text = re.sub(r"\\[()\[\]]|\$", " ", text)
    parts = [p.strip(" .") for p in re.split(r"=|\\equiv|≡", text) if p.strip(" .")]
    if len(parts) <= 1:
        return parts[0] if parts else None
    stated = [p for p in parts if is_number(p)]
    wrong = [p for p in stated if as_decimal(p) != target]
    if wrong:
        raise ExpressionError(f"states the result is {wrong[0]}, the target is {target}")
    expressions = [p for p in parts if not is_number(p)]
    return expressions[0] if expressions else parts[0]


def _usage_error(used: list[int], numbers: list[int], use_all: bool) -> str:
    have, want = Counter(used), Counter(numbers)
    extra = have - want
    if extra:
        return f"uses {sorted(extra.elements())} beyond the given numbers {numbers}"
    missing = want - have
    if use_all and missing:
        return f"does not use {sorted(missing.elements())} of the given numbers {numbers}"
    return ""
