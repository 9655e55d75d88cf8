"""Verifiers for puzzles with one checkable answer: Game of 24 and Countdown (their arithmetic
is in verifiers.arithmetic), the pair cipher, letter counting, "which is larger" and multiple
choice. How they all read a problem and an answer is in verifiers.puzzle_reading.
"""

from __future__ import annotations

import re
import unicodedata
from decimal import Decimal
from fractions import Fraction
from typing import Any, Mapping

from verifiers.arithmetic import (MAX_EXPRESSION, ArithmeticPuzzleVerifier, ExpressionError,
                                  evaluate, normalize_expression)
from verifiers.base import Verdict, register
from verifiers.extract import final_answer
from verifiers.puzzle_reading import MAX_LINE, as_decimal, last_lines, meta_of, plain_words, verdict

__all__ = ["MAX_EXPRESSION", "MAX_LINE", "ArithmeticPuzzleVerifier", "ChoiceVerifier",
           "CipherVerifier", "CompareVerifier", "ExpressionError", "LetterCountVerifier",
           "count_mentions", "decode_pairs", "decode_pairs_by_word", "evaluate", "normalize_expression"]


# ----------------------------------------------------------------------------- cipher


def decode_pairs(ciphertext: str) -> str:
    """Decode the letter-pair cipher: each pair of letters becomes the letter at the average of
    their alphabet positions ("oy" -> (15 + 25) / 2 = 20 -> "t"); words stay words.

    Raises ValueError for text that is not a valid ciphertext (odd word, odd pair sum, non-letters).
    """
    return " ".join("".join(letter for _, letter in word) for word in decode_pairs_by_word(ciphertext))


def decode_pairs_by_word(ciphertext: str) -> list[list[tuple[str, str]]]:
    """The decoding step by step: per word, each pair with its letter ([[("oy", "t"), ...], ...]).
    The one decoder: the verifier checks with it and the reference solution writes its steps with it.

    Raises ValueError like `decode_pairs`.
    """
    words = []
    for word in ciphertext.lower().split():
        if len(word) % 2 or not re.fullmatch(r"[a-z]+", word):
            raise ValueError(f"cipher word {word!r} is not an even run of letters a-z"[:200])
        decoded = []
        for first, second in zip(word[::2], word[1::2]):
            total = (ord(first) - 96) + (ord(second) - 96)
            if total % 2:
                raise ValueError(f"pair {first + second!r} has no whole average")
            decoded.append((first + second, chr(total // 2 + 96)))
        words.append(decoded)
    if not words:
        raise ValueError("empty ciphertext")
    return words


class CipherVerifier:
    name = "cipher"
    version = "1"

    def verify(self, problem: Mapping[str, Any], completion: str) -> Verdict:
        try:
            ciphertext = meta_of(problem).get("ciphertext")
            if not isinstance(ciphertext, str):
                raise ValueError("meta 'ciphertext' must be text")
            plaintext = decode_pairs(ciphertext[:100_000])
            gold = problem.get("answer")
            if not isinstance(gold, str) or plain_words(gold) != plain_words(plaintext):
                raise ValueError(f"gold {gold!r} is not the decoding {plaintext!r}"[:300])
        except ValueError as e:
            return verdict(self, False, f"bad problem: {e}")
        answer = final_answer(completion) if isinstance(completion, str) else None
        if answer is None:
            return verdict(self, False, "no final answer")
        if plain_words(answer) == plain_words(plaintext):
            return verdict(self, True, "plaintext matches", answer)
        return verdict(self, False, f"plaintext is {plain_words(plaintext)!r}", answer)


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
            meta = meta_of(problem)
            word, letter = meta.get("word"), meta.get("letter")
            if not isinstance(word, str) or not isinstance(letter, str) or not letter:
                raise ValueError("meta needs text 'word' and 'letter'")
            count = word.casefold().count(letter.casefold())
            golds = count_mentions(str(problem.get("answer")))
            gold = golds.pop() if len(golds) == 1 else None
            if gold != count:
                raise ValueError(f"gold {problem.get('answer')!r} but {letter!r} occurs {count} times in {word!r}"[:300])
        except ValueError as e:
            return verdict(self, False, f"bad problem: {e}")
        answer = final_answer(completion) if isinstance(completion, str) else None
        if answer is None:
            return verdict(self, False, "no final answer")
        named = count_mentions(answer)
        if not named:
            return verdict(self, False, "the answer names no number", answer)
        if len(named) > 1:
            return verdict(self, False, "the answer names several numbers", answer)
        if named != {count}:
            return verdict(self, False, f"count is {count}", answer)
        return verdict(self, True, "count matches", answer)


# ---------------------------------------------------------------------------- compare

_DECIMAL_TOKEN = re.compile(r"(?<![\w.])[-+]?(?:\d+(?:\.\d+)?|\.\d+)(?![\w]|\.\d)")


class CompareVerifier:
    """Which of two numbers is larger ("9.11 or 9.8"): the answer must name the larger one only."""

    name = "compare"
    version = "1"

    def verify(self, problem: Mapping[str, Any], completion: str) -> Verdict:
        try:
            meta = meta_of(problem)
            a, b = as_decimal(str(meta.get("a"))), as_decimal(str(meta.get("b")))
            gold = as_decimal(str(problem.get("answer")))
            if a is None or b is None or a == b:
                raise ValueError("meta needs two different numbers 'a' and 'b'")
            if gold != max(a, b):
                raise ValueError(f"gold {problem.get('answer')!r} is not the larger of {a} and {b}")
        except ValueError as e:
            return verdict(self, False, f"bad problem: {e}")
        answer = final_answer(completion) if isinstance(completion, str) else None
        if answer is None:
            return verdict(self, False, "no final answer")
        named = {Decimal(t) for t in _DECIMAL_TOKEN.findall(unicodedata.normalize("NFKC", answer)[:MAX_LINE])}
        if not named:
            return verdict(self, False, "the answer names no number", answer)
        if named == {gold}:
            return verdict(self, True, "names the larger number", answer)
        if len(named) > 1:
            return verdict(self, False, "the answer names more than one number", answer)
        return verdict(self, False, f"the larger number is {gold}", answer)


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
            return verdict(self, False, f"bad problem: {e}")
        if not isinstance(completion, str):
            return verdict(self, False, "no final answer: completion is not text")
        answer = final_answer(completion)
        candidates = [answer] if answer is not None else last_lines(completion)[:1]
        if not candidates:
            return verdict(self, False, "no final answer")
        text = candidates[0]
        if _hedges(text):
            return verdict(self, False, "the answer names more than one option", text)
        chosen = _chosen_letter(text, options)
        if chosen is None:
            return verdict(self, False, "no option letter in the answer", text)
        if options and chosen not in options:
            return verdict(self, False, f"{chosen} is not an option", text)
        if chosen != gold:
            return verdict(self, False, f"chose {chosen}, the answer is {gold}", text)
        return verdict(self, True, f"chose {gold}", text)


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
    plain = plain_words(text)
    matching = [letter for letter, option in options.items() if plain_words(option) == plain]
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
