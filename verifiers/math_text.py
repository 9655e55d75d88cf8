"""Text clean-up of one math answer before parsing: delimiters, look-alikes, units, %, degrees.

The parser sees a plain LaTeX-ish expression; the facts stripped here (a unit, a percent
sign, a degree mark) travel beside it in `CleanAnswer` because the equivalence policy in
verifiers/math.py needs them (same number, different unit is wrong).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from verifiers.extract import MAX_ANSWER_CHARS


@dataclass(frozen=True)
class CleanAnswer:
    text: str
    """The expression left for the parser."""
    unit: str = ""
    """Normalized trailing unit ("cm", "m/s", "dollar"), "" when none."""
    percent: bool = False
    degrees: bool = False
    choice: str = ""
    """The option letter of a multiple-choice answer ("(B) 12" -> "B"), "" when none."""


_SUPERSCRIPTS = str.maketrans("⁰¹²³⁴⁵⁶⁷⁸⁹⁻⁺", "0123456789-+")
_SYMBOLS = {
    "−": "-", "–": "-", "—": "-", "×": r"\times ", "·": r"\cdot ", "⋅": r"\cdot ", "÷": r"\div ",
    "√": r"\sqrt ", "π": r"\pi ", "∞": r"\infty ", "≤": r"\le ", "≥": r"\ge ", "≠": r"\ne ",
    "∪": r"\cup ", "±": r"\pm ", "∓": r"\mp ", "°": r"^\circ ", "⁄": "/", "∅": r"\emptyset ",
    "∈": r"\in ", "ℝ": r"\mathbb{R}", "≈": r"\approx ", "∖": r"\setminus ",
}
_SYMBOL_RE = re.compile("|".join(re.escape(k) for k in _SYMBOLS))
_SUPERSCRIPT_RUN = re.compile("[⁰¹²³⁴⁵⁶⁷⁸⁹⁻⁺]+")

_SPACING = re.compile(
    r"\\(?:left|right|big|Big|bigg|Bigg|displaystyle|textstyle|limits)(?![a-zA-Z])|(?<!\\)\\[!;: ]|~"
)
_TEXT_WRAPPER = re.compile(
    r"\\(text|textrm|textbf|textit|textnormal|textup|mbox|hbox|mathrm|mathbf|mathit|operatorname)\s*\{([^{}]*)\}"
)
_TEXT_MODE = {"text", "textrm", "textbf", "textit", "textnormal", "textup", "mbox", "hbox"}
_OVER_BRACED = re.compile(r"\{([^{}]*)\\over(?![a-zA-Z])([^{}]*)\}")
_OVER = re.compile(r"^([^{}]*)\\over(?![a-zA-Z])([^{}]*)$")
_REALS = re.compile(r"\\(?:mathbb|Bbb|mathbf)\s*\{?\s*R\s*\}?(?![a-zA-Z])|\\R(?![a-zA-Z])")
_APPROX_LEAD = re.compile(r"^\s*(?:\\approx|\\sim|approximately|about|approx\.?)(?![a-zA-Z])\s*", re.IGNORECASE)
_CHOICE = re.compile(r"^\s*\(\s*([A-E])\s*\)\s*|^\s*([A-E])\s*\)\s*|^\s*([A-E])\s*$")
_REMARK = re.compile(r"\s*\(\s*([a-zA-Z]{2,})[^()]*\)\s*$")
_WORDS_REMARK = re.compile(r"\s+\(\s*[a-zA-Z]{3,}(?:\s+[a-zA-Z]+)*\s*\)\s*")
_NAMED_SETS = {"all real numbers": "(-\\infty,\\infty)", "no solution": "\\emptyset",
               "no solutions": "\\emptyset", "no real solutions": "\\emptyset"}
_HEDGE_WORDS = {"or", "maybe", "perhaps", "possibly", "and", "either", "also", "otherwise"}
_ORDINAL = re.compile(r"(?<=\d)\s*(?:\^\s*\{\s*(?:st|nd|rd|th)\s*\}|\^?\s*(?:st|nd|rd|th))\s*$")
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
    text, words = _strip_presentation(text)
    remark = _REMARK.search(text)
    if remark and (remark.group(1) in words or _WORDS_REMARK.fullmatch(remark.group())) \
            and not _HEDGE_WORDS & set(re.findall(r"[a-z]+", remark.group().lower())):
        text = text[: remark.start()]  # "x = 3 \text{ (double root)}", "18 (dollars)": a remark
    text = _NAMED_SETS.get(text.strip().lower().rstrip("."), text)
    text = _APPROX_LEAD.sub("", text)
    choice, text = _choice(text)
    currency = bool(_CURRENCY.search(text))
    text = _CURRENCY.sub(" ", text).strip()
    percent = bool(_PERCENT.search(text))
    text = _PERCENT.sub("", text)
    text = _ORDINAL.sub("", text)
    text, unit = _split_unit(text, words)
    degrees = bool(_DEGREES.search(text)) or unit in {"degree", "deg"}
    text = _DEGREES.sub("", text)
    if unit in {"degree", "deg"}:
        unit = ""
    if currency and not unit:
        unit = "dollar"
    prose = [w for w in re.findall(r"[a-zA-Z]{2,}", text) if w in words and w not in ("and", "or")]
    if prose and re.sub(r"[a-zA-Z]{2,}|\s", "", text):
        # "12 \text{ cm or } 13": words written as text are never letters of a product
        raise ValueError(f"words inside the answer: {' '.join(prose[:3])}")
    text = _thousands(text.strip())
    return CleanAnswer(text=text.strip(), unit=unit, percent=percent, degrees=degrees, choice=choice)


def _choice(text: str) -> tuple[str, str]:
    """("B", "12") for "(B) 12"; ("B", "") for "(B)" or a bare "B"."""
    match = _CHOICE.match(text)
    if match is None:
        return "", text
    return next(g for g in match.groups() if g), text[match.end() :]


def _plain_unicode(text: str) -> str:
    text = _SUPERSCRIPT_RUN.sub(lambda m: "^{" + m.group().translate(_SUPERSCRIPTS) + "}", text)
    # NFKC folds full-width digits and letters to ASCII ("１２" -> "12", "½" -> "1⁄2");
    # look-alikes from other scripts (Cyrillic "а") stay as they are and fail to parse later.
    text = unicodedata.normalize("NFKC", text)
    return _SYMBOL_RE.sub(lambda m: _SYMBOLS[m.group()], text)


def _strip_presentation(text: str) -> tuple[str, set[str]]:
    """The text without LaTeX presentation, and the words that were written in text mode."""
    text = text.strip().strip("$").strip()
    if text.startswith("\\(") and text.endswith("\\)") or text.startswith("\\[") and text.endswith("\\]"):
        text = text[2:-2]
    words: set[str] = set()

    def unwrap(match: re.Match) -> str:
        if match.group(1) in _TEXT_MODE:
            words.update(re.findall(r"[a-zA-Z]+", match.group(2)))
        return " " + match.group(2) + " "

    for _ in range(4):  # nested wrappers: \text{\textbf{cm}}
        text = _TEXT_WRAPPER.sub(unwrap, text)
    text = text.replace("\\!", "")  # negative thin space: "1,\\!000" is one number
    text = _SPACING.sub(" ", text)
    text = _QUAD.sub(" , ", text)
    text = _FRAC_VARIANTS.sub(r"\\frac", text)
    text = _BINOM_VARIANTS.sub(r"\\binom", text)
    for _ in range(4):  # {5 \over 2} is \frac{5}{2}
        text = _OVER_BRACED.sub(r"\\frac{\1}{\2}", text)
    text = _OVER.sub(r"\\frac{\1}{\2}", text)
    text = _REALS.sub(lambda m: "(-\\infty,\\infty)", text)
    return text, words


_UNIT_TOKEN = re.compile(r"[a-zA-Z][a-zA-Z.]*(?:\^\{?\d\}?)?(?:/[a-zA-Z]+(?:\^\{?\d\}?)?)?|\^\{?\d\}?|/|per")
_GLUED_UNIT = re.compile(r"^(.*\d)([a-zA-Z]+(?:\^\{?\d\}?)?)$")


def _split_unit(text: str, words: set[str] = frozenset()) -> tuple[str, str]:
    """Split "5 cm^2" into ("5", "cm^2"); leave "5x" and "2 \\pi" alone. Words written in
    text mode (``\\frac13\\text{ meters}``) are always a unit, never letters of a product."""
    text = text.rstrip()
    tokens = [(m.start(), m.group()) for m in re.finditer(r"\S+", text)]
    i = len(tokens)
    seen_text = False
    while i > 0 and _UNIT_TOKEN.fullmatch(tokens[i - 1][1]) and tokens[i - 1][1].lower() not in _MATH_WORDS:
        in_text = all(w in words for w in re.findall(r"[a-zA-Z]+", tokens[i - 1][1]))
        if seen_text and not in_text:
            break  # "x \text{ cm}": the unit is what was written as text
        seen_text = seen_text or in_text and tokens[i - 1][1][0].isalpha()
        i -= 1
    while i < len(tokens) and not tokens[i][1][0].isalpha():
        i += 1  # a unit starts with a word
    if i == len(tokens):
        glued = _GLUED_UNIT.match(tokens[-1][1]) if tokens else None
        if glued is None or glued.group(2).lower() not in _COMMON_UNITS and glued.group(2) not in words:
            return text, ""
        core, suffix = text[: tokens[-1][0]] + glued.group(1), glued.group(2)
    else:
        core, suffix = text[: tokens[i][0]].rstrip(), text[tokens[i][0] :].strip()
    written_as_text = all(w in words for w in re.findall(r"[a-zA-Z]+", suffix))
    if not core or not written_as_text and not re.search(r"[\d})\]]$|\\[a-zA-Z]+$", core):
        return text, ""
    if not written_as_text:
        if re.search(r"(?<![\\a-zA-Z])[a-zA-Z]", re.sub(r"\\[a-zA-Z]+", "", core)):
            return text, ""  # "3x + 5 m": letters in the core make it algebra, not a quantity
        word = re.match(r"[a-zA-Z]+", suffix).group().lower()
        if len(word) == 1 and word not in _SINGLE_LETTER_UNITS:
            return text, ""
        if not text[len(core) : len(core) + 1].isspace() and word not in _COMMON_UNITS:
            return text, ""  # "6xy" is a product; "5cm" is a length
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
