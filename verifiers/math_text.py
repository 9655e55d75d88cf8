"""Text clean-up of one math answer before parsing: delimiters, look-alikes, units, %, degrees.

The parser sees a plain LaTeX-ish expression; the facts stripped here (a unit, a percent
sign, a degree mark) travel beside it in `CleanAnswer` because the equivalence policy in
verifiers/math.py needs them (same number, different unit is wrong).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

MAX_ANSWER_CHARS = 2_000
"""Longer answers are rejected before parsing: no real final answer is this long, and the
parser's cost must stay bounded on hostile text."""


@dataclass(frozen=True)
class CleanAnswer:
    text: str
    """The expression left for the parser."""
    unit: str = ""
    """Normalized trailing unit ("cm", "m/s", "dollar"), "" when none."""
    percent: bool = False
    degrees: bool = False


_SUPERSCRIPTS = str.maketrans("⁰¹²³⁴⁵⁶⁷⁸⁹⁻⁺", "0123456789-+")
_SYMBOLS = {
    "−": "-", "–": "-", "—": "-", "×": r"\times ", "·": r"\cdot ", "⋅": r"\cdot ", "÷": r"\div ",
    "√": r"\sqrt ", "π": r"\pi ", "∞": r"\infty ", "≤": r"\le ", "≥": r"\ge ", "≠": r"\ne ",
    "∪": r"\cup ", "±": r"\pm ", "∓": r"\mp ", "°": r"^\circ ", "⁄": "/", "∅": r"\emptyset ",
    "∈": r"\in ", "ℝ": r"\mathbb{R}",
}
_SYMBOL_RE = re.compile("|".join(re.escape(k) for k in _SYMBOLS))
_SUPERSCRIPT_RUN = re.compile("[⁰¹²³⁴⁵⁶⁷⁸⁹⁻⁺]+")

_SPACING = re.compile(
    r"\\(?:left|right|big|Big|bigg|Bigg|displaystyle|textstyle|limits)(?![a-zA-Z])|(?<!\\)\\[!;: ]|~"
)
_TEXT_WRAPPER = re.compile(
    r"\\(?:text|textrm|textbf|textit|mbox|mathrm|mathbf|mathit|operatorname|hbox)\s*\{([^{}]*)\}"
)
_FRAC_VARIANTS = re.compile(r"\\[dtc]frac(?![a-zA-Z])")
_BINOM_VARIANTS = re.compile(r"\\[dt]binom(?![a-zA-Z])")
_QUAD = re.compile(r"\\q?quad(?![a-zA-Z])")

_PERCENT = re.compile(r"\s*(?:\\%|%|\bpercent\b)\s*$", re.IGNORECASE)
_DEGREES = re.compile(
    r"\s*(?:\^\s*\{\s*\\circ\s*\}|\^\s*\\circ|\\circ|\\degree|\bdegrees?\b)\s*$", re.IGNORECASE
)
_CURRENCY = re.compile(r"^\s*\\?\$\s*|\s*\\?\$\s*$")
_BRACED_COMMA = re.compile(r"(?<=\d)\{,\}(?=\d{3})")
_THOUSANDS_COMMA = re.compile(r"(?<![\d.])\d{1,3}(?:,\d{3})+(?![\d,])")
_THOUSANDS_SPACE = re.compile(r"(?<![\d.])\d{1,3}(?:(?: |\\,)\d{3})+(?![\d.])")

# A trailing unit: words (letters, ^2, /, spaces) after a number. Checked by a plain scan
# (no nested regex quantifiers) in `_split_unit`.
_MATH_WORDS = {
    "sin", "cos", "tan", "cot", "sec", "csc", "log", "ln", "exp", "sqrt", "pi", "or", "and",
    "arcsin", "arccos", "arctan", "sinh", "cosh", "tanh", "infinity", "inf", "oo", "i", "e",
}
_SINGLE_LETTER_UNITS = {"m", "g", "s", "l", "h", "k", "a", "v", "w", "j", "n"}
_COMMON_UNITS = {
    "cm", "mm", "km", "m", "kg", "g", "mg", "s", "ms", "h", "hr", "hrs", "min", "ml", "l",
    "ft", "yd", "mi", "lb", "lbs", "oz", "mph", "kmh", "cents", "dollars", "units",
}
_GENERIC_UNITS = {"unit", "units", "squareunits", "squareunit", "sq.units", "cubicunits"}
_PLURALS = {"inches": "inch", "feet": "foot", "foot": "foot", "cents": "cent", "dollars": "dollar"}


def clean_answer(raw: str) -> CleanAnswer:
    """Strip delimiters and presentation, pull out unit / % / degrees. Raises ValueError."""
    if len(raw) > MAX_ANSWER_CHARS:
        raise ValueError(f"answer longer than {MAX_ANSWER_CHARS} characters")
    text = _plain_unicode(raw)
    text = _strip_presentation(text)
    currency = bool(_CURRENCY.search(text))
    text = _CURRENCY.sub(" ", text).strip()
    percent = bool(_PERCENT.search(text))
    text = _PERCENT.sub("", text)
    text, unit = _split_unit(text)
    degrees = bool(_DEGREES.search(text)) or unit in {"degree", "deg"}
    text = _DEGREES.sub("", text)
    if unit in {"degree", "deg"}:
        unit = ""
    if currency and not unit:
        unit = "dollar"
    text = _thousands(text.strip())
    return CleanAnswer(text=text.strip(), unit=unit, percent=percent, degrees=degrees)


def _plain_unicode(text: str) -> str:
    text = _SUPERSCRIPT_RUN.sub(lambda m: "^{" + m.group().translate(_SUPERSCRIPTS) + "}", text)
    # NFKC folds full-width digits and letters to ASCII ("１２" -> "12", "½" -> "1⁄2");
    # look-alikes from other scripts (Cyrillic "а") stay as they are and fail to parse later.
    text = unicodedata.normalize("NFKC", text)
    return _SYMBOL_RE.sub(lambda m: _SYMBOLS[m.group()], text)


def _strip_presentation(text: str) -> str:
    text = text.strip().strip("$").strip()
    if text.startswith("\\(") and text.endswith("\\)") or text.startswith("\\[") and text.endswith("\\]"):
        text = text[2:-2]
    for _ in range(4):  # nested wrappers: \text{\textbf{cm}}
        text = _TEXT_WRAPPER.sub(lambda m: " " + m.group(1) + " ", text)
    text = text.replace("\\!", "")  # negative thin space: "1,\\!000" is one number
    text = _SPACING.sub(" ", text)
    text = _QUAD.sub(" , ", text)
    text = _FRAC_VARIANTS.sub(r"\\frac", text)
    text = _BINOM_VARIANTS.sub(r"\\binom", text)
    text = text.replace("\\mathbb{R}", "(-\\infty,\\infty)")
    return text


def _split_unit(text: str) -> tuple[str, str]:
    """Split "5 cm^2" into ("5", "cm^2"); leave "5x" and "2 \\pi" alone."""
    text = text.rstrip()
    i = len(text)
    # Walk back over characters a unit may hold.
    while i > 0 and (text[i - 1].isalpha() or text[i - 1] in " /^{}.0123456789"):
        i -= 1
    # The unit must start with a letter; move forward to the first letter.
    while i < len(text) and not text[i].isalpha():
        i += 1
    suffix = text[i:].strip()
    core = text[:i].rstrip()
    if not suffix or not core or core.endswith("\\") or not re.search(r"[\d}]\s*$", core):
        return text, ""
    if re.search(r"(?<![\\a-zA-Z])[a-zA-Z]", re.sub(r"\\[a-zA-Z]+", "", core)):
        return text, ""  # "3x + 5 m": letters in the core make it algebra, not a quantity
    if re.search(r"(?<![\^{\d])\d", suffix):
        return text, ""  # "12 maybe 13" is a hedge, not a unit; only exponents (cm^2) have digits
    first_word = re.match(r"[a-zA-Z]+", suffix)
    if first_word is None:
        return text, ""
    word = first_word.group().lower()
    if word in _MATH_WORDS:
        return text, ""
    spaced = text[i - 1].isspace()
    if not spaced and word not in _COMMON_UNITS:
        return text, ""  # "6xy" is a product; "5cm" is a length
    if len(word) == 1 and word not in _SINGLE_LETTER_UNITS:
        return text, ""
    return core, _normalize_unit(suffix)


def _normalize_unit(unit: str) -> str:
    unit = re.sub(r"[\s{}]", "", unit.lower()).rstrip(".")
    if unit in _GENERIC_UNITS:
        return ""
    unit = _PLURALS.get(unit, unit)
    if len(unit) > 3 and unit.endswith("s") and unit.isalpha():
        unit = unit[:-1]  # "meters" / "meter"
    return unit


def _thousands(text: str) -> str:
    text = _BRACED_COMMA.sub("", text)
    if re.search(r"[(\[{]", text):
        return text  # inside tuples and sets a comma separates items
    text = _THOUSANDS_COMMA.sub(lambda m: m.group().replace(",", ""), text)
    return _THOUSANDS_SPACE.sub(lambda m: re.sub(r" |\\,", "", m.group()), text)
