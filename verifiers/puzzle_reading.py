"""How every puzzle verifier reads a problem and an answer: the problem's `meta`, integers and
decimals in it, the last lines of a completion, plaintext as case-folded words, and the
Verdict each puzzle verifier returns."""

from __future__ import annotations

import re
import unicodedata
from decimal import Decimal, InvalidOperation
from typing import Any, Mapping

from verifiers.base import Verdict

MAX_LINE = 2_000
"""Only lines this short are candidates for a bare "expr = 24" line or a fallback answer."""


def verdict(verifier: Any, correct: bool, reason: str, extracted: str | None = None) -> Verdict:
    return Verdict(correct, reason, extracted, None, verifier.name, verifier.version)


def meta_of(problem: Any) -> Mapping[str, Any]:
    if not isinstance(problem, Mapping):
        raise ValueError("problem is not a mapping")
    meta = problem.get("meta")
    if not isinstance(meta, Mapping):
        raise ValueError("no 'meta' mapping")
    return meta


def as_integer(value: Any, what: str) -> int:
    if isinstance(value, bool):
        raise ValueError(f"{what} {value!r} is not an integer")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and re.fullmatch(r"\s*-?\d{1,30}\s*", value):
        return int(value)
    raise ValueError(f"{what} {value!r} is not an integer"[:200])


def last_lines(completion: str) -> list[str]:
    """Non-empty, not-too-long lines near the end, last first."""
    lines = completion[-20_000:].splitlines()
    return [ln.strip() for ln in reversed(lines) if ln.strip() and len(ln) <= MAX_LINE]


def is_number(text: str) -> bool:
    return as_decimal(text) is not None


def as_decimal(text: str) -> Decimal | None:
    text = unicodedata.normalize("NFKC", text).strip().replace("−", "-")
    if not re.fullmatch(r"[-+]?(\d+(\.\d*)?|\.\d+)", text):
        return None
    try:
        return Decimal(text)
    except InvalidOperation:
        return None


def plain_words(text: str) -> str:
    """Case-folded words without punctuation: the cipher has letters only, so "R's" and "rs",
    '"think step by step."' and "think step by step" are the same plaintext."""
    text = unicodedata.normalize("NFKC", text).casefold().replace("'", "").replace("’", "")
    return " ".join(re.sub(r"[\W_]+", " ", text).split())
