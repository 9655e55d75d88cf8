"""Verifiers for puzzles with one checkable answer: Game of 24, Countdown, the pair cipher,
letter counting, "which is larger" and multiple choice.

Arithmetic puzzles (game24, countdown) are judged by evaluating the model's expression, not by
comparing strings: any expression that uses the given numbers by the rules and hits the target
is right. Expressions are parsed with Python's `ast` and an explicit whitelist (never `eval`):

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
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from typing import Any, Mapping

from verifiers.base import Verdict, register
from verifiers.extract import final_answer

MAX_EXPRESSION = 300
"""Characters; a Game of 24 or Countdown expression is a few dozen. Longer text is not parsed."""
MAX_LINE = 2_000
"""Only lines this short are candidates for a bare "expr = 24" line or a fallback answer."""

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


def _verdict(verifier: Any, correct: bool, reason: str, extracted: str | None = None) -> Verdict:
    return Verdict(correct, reason, extracted, None, verifier.name, verifier.version)


def _meta(problem: Any) -> Mapping[str, Any]:
    if not isinstance(problem, Mapping):
        raise ValueError("problem is not a mapping")
    meta = problem.get("meta")
    if not isinstance(meta, Mapping):
        raise ValueError("no 'meta' mapping")
    return meta


def _integer(value: Any, what: str) -> int:
    if isinstance(value, bool):
        raise ValueError(f"{what} {value!r} is not an integer")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and re.fullmatch(r"\s*-?\d{1,30}\s*", value):
        return int(value)
    raise ValueError(f"{what} {value!r} is not an integer"[:200])


def _numbers(meta: Mapping[str, Any]) -> list[int]:
    numbers = meta.get("numbers")
    if isinstance(numbers, (str, bytes)) or not isinstance(numbers, (list, tuple)) or not numbers:
        raise ValueError("meta 'numbers' must be a non-empty list of integers")
    if len(numbers) > 20:
        raise ValueError(f"meta 'numbers' has {len(numbers)} entries; at most 20")
    return [_integer(n, "number") for n in numbers]


def _lines(completion: str) -> list[str]:
    """Non-empty, not-too-long lines near the end, last first."""
    lines = completion[-20_000:].splitlines()
    return [ln.strip() for ln in reversed(lines) if ln.strip() and len(ln) <= MAX_LINE]


# ------------------------------------------------------------------ game24 / countdown


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
            return _verdict(self, False, f"bad problem: {e}")
        if not isinstance(completion, str):
            return _verdict(self, False, "no final answer: completion is not text")
        try:
            candidates = self._candidates(completion, target)
        except ExpressionError as e:
            return _verdict(self, False, str(e))
        if not candidates:
            return _verdict(self, False, "no expression found")
        first_error = None
        for expression in candidates:  # the first one that parses is the model's expression
            shown = expression[:MAX_EXPRESSION]
            try:
                value, used = evaluate(expression)
                break
            except ZeroDivisionError:
                return _verdict(self, False, "division by zero", shown)
            except (ExpressionError, RecursionError) as e:
                first_error = first_error or _verdict(self, False, str(e) or "expression nested too deeply", shown)
        else:
            return first_error
        usage = _usage_error(used, numbers, use_all)
        if usage:
            return _verdict(self, False, usage, shown)
        if value != target:
            return _verdict(self, False, f"expression equals {value}, not {target}", shown)
        return _verdict(self, True, f"expression equals {target}", shown)

    def _rules(self, problem: Any) -> tuple[list[int], int, bool]:
        meta = _meta(problem)
        numbers = _numbers(meta)
        targets = set()
        if meta.get("target") is not None:
            targets.add(_integer(meta["target"], "target"))
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
            if expression is not None and not _is_number(expression):
                candidates.append(expression)
        for line in _lines(completion)[:10]:
            if "=" in line and line != answer:
                try:
                    expression = _expression_side(line, target)
                except ExpressionError:
                    continue  # an intermediate step such as "8-4 = 4"
                if expression is not None and not _is_number(expression):
                    candidates.append(expression)
        if answer is not None and _is_number(answer):
            candidates.append(answer)
        return candidates


def _gold_target(answer: Any) -> int:
    """The target from the gold: "24", or a sample solution "(8-4)*(7-1)" some datasets store."""
    try:
        return _integer(answer, "answer")
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
    stated = [p for p in parts if _is_number(p)]
    wrong = [p for p in stated if _decimal(p) != target]
    if wrong:
        raise ExpressionError(f"states the result is {wrong[0]}, the target is {target}")
    expressions = [p for p in parts if not _is_number(p)]
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


def _is_number(text: str) -> bool:
    return _decimal(text) is not None


def _decimal(text: str) -> Decimal | None:
    text = unicodedata.normalize("NFKC", text).strip().replace("−", "-")
    if not re.fullmatch(r"[-+]?(\d+(\.\d*)?|\.\d+)", text):
        return None
    try:
        return Decimal(text)
    except InvalidOperation:
        return None


# ----------------------------------------------------------------------------- cipher


def decode_pairs(ciphertext: str) -> str:
    """Decode the letter-pair cipher: each pair of letters becomes the letter at the average of
    their alphabet positions ("oy" -> (15 + 25) / 2 = 20 -> "t"); words stay words.

    Raises ValueError for text that is not a valid ciphertext (odd word, odd pair sum, non-letters).
    """
    words = []
    for word in ciphertext.lower().split():
        if len(word) % 2 or not re.fullmatch(r"[a-z]+", word):
            raise ValueError(f"cipher word {word!r} is not an even run of letters a-z"[:200])
        letters = []
        for first, second in zip(word[::2], word[1::2]):
            total = (ord(first) - 96) + (ord(second) - 96)
            if total % 2:
                raise ValueError(f"pair {first + second!r} has no whole average")
            letters.append(chr(total // 2 + 96))
        words.append("".join(letters))
    if not words:
        raise ValueError("empty ciphertext")
    return " ".join(words)


def _plain(text: str) -> str:
    """Case-folded words without punctuation: the cipher has letters only, so "R's" and "rs",
    '"think step by step."' and "think step by step" are the same plaintext."""
    text = unicodedata.normalize("NFKC", text).casefold().replace("'", "").replace("’", "")
    return " ".join(re.sub(r"[\W_]+", " ", text).split())


class CipherVerifier:
    name = "cipher"
    version = "1"

    def verify(self, problem: Mapping[str, Any], completion: str) -> Verdict:
        try:
            ciphertext = _meta(problem).get("ciphertext")
            if not isinstance(ciphertext, str):
                raise ValueError("meta 'ciphertext' must be text")
            plaintext = decode_pairs(ciphertext[:100_000])
            gold = problem.get("answer")
            if not isinstance(gold, str) or _plain(gold) != _plain(plaintext):
                raise ValueError(f"gold {gold!r} is not the decoding {plaintext!r}"[:300])
        except ValueError as e:
            return _verdict(self, False, f"bad problem: {e}")
        answer = final_answer(completion) if isinstance(completion, str) else None
        if answer is None:
            return _verdict(self, False, "no final answer")
        if _plain(answer) == _plain(plaintext):
            return _verdict(self, True, "plaintext matches", answer)
        return _verdict(self, False, f"plaintext is {_plain(plaintext)!r}", answer)


# ----------------------------------------------------------------------- letter_count

_UNITS = "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen " \
         "fifteen sixteen seventeen eighteen nineteen".split()
_TENS = "twenty thirty forty fifty sixty seventy eighty ninety".split()
_NUMBER_WORDS = {w: i for i, w in enumerate(_UNITS)} | {w: 20 + 10 * i for i, w in enumerate(_TENS)}
_WORD_NUMBER = re.compile(
    r"\b(" + "|".join(_TENS) + r")[\s-]+(" + "|".join(_UNITS[1:10]) + r")\b|\b("
    + "|".join(sorted(_NUMBER_WORDS, key=len, reverse=True)) + r")\b|(?<![\w.])(\d+(?:\.\d+)?)(?![\w.])"
)


def count_mentions(text: str) -> set[Fraction]:
    """Every number the text names, in digits or English words up to ninety-nine."""
    found = set()
    for tens, unit, word, digits in _WORD_NUMBER.findall(text.casefold()[:MAX_LINE]):
        if tens:
            found.add(Fraction(_NUMBER_WORDS[tens] + _NUMBER_WORDS[unit]))
        elif word:
            found.add(Fraction(_NUMBER_WORDS[word]))
        else:
            found.add(Fraction(digits))
    return found


class LetterCountVerifier:
    """How many times does a letter occur in a word ("r" in "strawberry" -> 3)."""

    name = "letter_count"
    version = "1"

    def verify(self, problem: Mapping[str, Any], completion: str) -> Verdict:
        try:
            meta = _meta(problem)
            word, letter = meta.get("word"), meta.get("letter")
            if not isinstance(word, str) or not isinstance(letter, str) or not letter:
                raise ValueError("meta needs text 'word' and 'letter'")
            count = word.casefold().count(letter.casefold())
            golds = count_mentions(str(problem.get("answer")))
            gold = golds.pop() if len(golds) == 1 else None
            if gold != count:
                raise ValueError(f"gold {problem.get('answer')!r} but {letter!r} occurs {count} times in {word!r}"[:300])
        except ValueError as e:
            return _verdict(self, False, f"bad problem: {e}")
        answer = final_answer(completion) if isinstance(completion, str) else None
        if answer is None:
            return _verdict(self, False, "no final answer")
        named = count_mentions(answer)
        if not named:
            return _verdict(self, False, "the answer names no number", answer)
        if len(named) > 1:
            return _verdict(self, False, "the answer names several numbers", answer)
        if named != {count}:
            return _verdict(self, False, f"count is {count}", answer)
        return _verdict(self, True, "count matches", answer)


# ---------------------------------------------------------------------------- compare

_DECIMAL_TOKEN = re.compile(r"(?<![\w.])[-+]?(?:\d+(?:\.\d+)?|\.\d+)(?![\w]|\.\d)")


class CompareVerifier:
    """Which of two numbers is larger ("9.11 or 9.8"): the answer must name the larger one only."""

    name = "compare"
    version = "1"

    def verify(self, problem: Mapping[str, Any], completion: str) -> Verdict:
        try:
            meta = _meta(problem)
            a, b = _decimal(str(meta.get("a"))), _decimal(str(meta.get("b")))
            gold = _decimal(str(problem.get("answer")))
            if a is None or b is None or a == b:
                raise ValueError("meta needs two different numbers 'a' and 'b'")
            if gold != max(a, b):
                raise ValueError(f"gold {problem.get('answer')!r} is not the larger of {a} and {b}")
        except ValueError as e:
            return _verdict(self, False, f"bad problem: {e}")
        answer = final_answer(completion) if isinstance(completion, str) else None
        if answer is None:
            return _verdict(self, False, "no final answer")
        named = {Decimal(t) for t in _DECIMAL_TOKEN.findall(unicodedata.normalize("NFKC", answer)[:MAX_LINE])}
        if not named:
            return _verdict(self, False, "the answer names no number", answer)
        if named == {gold}:
            return _verdict(self, True, "names the larger number", answer)
        if len(named) > 1:
            return _verdict(self, False, "the answer names more than one number", answer)
        return _verdict(self, False, f"the larger number is {gold}", answer)


# ----------------------------------------------------------------------------- choice

_CHOICE_ONLY = re.compile(r"(?:(?:option|choice|answer)\s*)?[(\[]?\s*([A-Za-z])\s*[)\]]?[.:]?", re.I)
_CHOICE_LEAD = re.compile(r"(?:(?:option|choice)\s+)?[(\[]?([A-Z])(?:[)\]:,]|\.\s|\s+[-–—]\s)\s*\S", re.I)
_CHOICE_MARK = re.compile(r"[(\[]([A-Z])[)\]]|(?<![A-Za-z])([A-Z])\)")
_CHOICE_HEDGE = re.compile(
    r"(?<![A-Za-z])[(\[]?([A-Z])[)\]]?\s*(?:,|/|&|\bor\b|\band\b|\band/or\b)\s*[(\[]?([A-Z])[)\]]?(?![A-Za-z])"
)
_PROSE = re.compile(r"^(?:the\s+)?(?:correct\s+|right\s+|best\s+)?(?:answer|option|choice)\s+(?:is|:)\s*", re.I)


class ChoiceVerifier:
    """Multiple choice: the gold is a letter; the answer must choose that one letter, no hedge."""

    name = "choice"
    version = "1"

    def verify(self, problem: Mapping[str, Any], completion: str) -> Verdict:
        try:
            if not isinstance(problem, Mapping):
                raise ValueError("problem is not a mapping")
            options = _options(problem.get("meta"))
            gold = _chosen_letter(str(problem.get("answer", "")), {})
            if gold is None or (options and gold not in options):
                raise ValueError(f"gold {problem.get('answer')!r} is not one of the option letters")
        except ValueError as e:
            return _verdict(self, False, f"bad problem: {e}")
        if not isinstance(completion, str):
            return _verdict(self, False, "no final answer: completion is not text")
        answer = final_answer(completion)
        candidates = [answer] if answer is not None else _lines(completion)[:1]
        if not candidates:
            return _verdict(self, False, "no final answer")
        text = candidates[0]
        if _hedges(text):
            return _verdict(self, False, "the answer names more than one option", text)
        chosen = _chosen_letter(text, options)
        if chosen is None:
            return _verdict(self, False, "no option letter in the answer", text)
        if options and chosen not in options:
            return _verdict(self, False, f"{chosen} is not an option", text)
        if chosen != gold:
            return _verdict(self, False, f"chose {chosen}, the answer is {gold}", text)
        return _verdict(self, True, f"chose {gold}", text)


def _options(meta: Any) -> dict[str, str]:
    """Letter -> option text from meta["choices"] (a list or a letter-keyed mapping), or {}."""
    choices = meta.get("choices", meta.get("options")) if isinstance(meta, Mapping) else None
    if isinstance(choices, Mapping):
        return {str(k).strip().upper(): str(v) for k, v in choices.items()}
    if isinstance(choices, (list, tuple)):
        return {chr(65 + i): str(v) for i, v in enumerate(choices[:26])}
    return {}


def _chosen_letter(text: str, options: Mapping[str, str]) -> str | None:
    text = unicodedata.normalize("NFKC", text[:MAX_LINE]).replace("*", "").replace("`", "")
    text = re.sub(r"\\text(?:bf)?\{([^{}]*)\}", r"\1", text).strip(" \t$")
    text = _PROSE.sub("", text)
    only = _CHOICE_ONLY.fullmatch(text)
    if only:
        return only.group(1).upper()
    lead = _CHOICE_LEAD.match(text)
    if lead:
        return lead.group(1).upper()
    marks = {a or b for a, b in _CHOICE_MARK.findall(text)}
    if len(marks) == 1:  # "Paris (B)"
        return marks.pop()
    plain = _plain(text)
    matching = [letter for letter, option in options.items() if _plain(option) == plain]
    return matching[0] if len(matching) == 1 else None


def _hedges(text: str) -> bool:
    text = text[:MAX_LINE].replace("*", "")
    marks = {a or b for a, b in _CHOICE_MARK.findall(text)}
    return len(marks) > 1 or any(a != b for a, b in _CHOICE_HEDGE.findall(text))


register("game24", ArithmeticPuzzleVerifier("game24", use_all_default=True))
register("countdown", ArithmeticPuzzleVerifier("countdown", use_all_default=False))
register("cipher", CipherVerifier())
register("letter_count", LetterCountVerifier())
register("compare", CompareVerifier())
register("choice", ChoiceVerifier())
