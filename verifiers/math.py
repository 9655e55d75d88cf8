"""Math answer verifier: is the model's final answer equivalent to the gold answer?

    from verifiers.math import verify, extract_gold
    verify("\\frac{1}{2}", "... so the answer is $\\boxed{0.5}$")   # Verdict(correct=True, ...)
    extract_gold("... 48 + 24 = 72 clips.\\n#### 72")              # "72"

Policy (gold first, asymmetric on purpose). Gold is trusted: it sets the expected shape
(a set is order-free, a tuple ordered, an interval cares about brackets) and may be parsed
generously. The prediction is untrusted model text: it is extracted (verifiers/extract.py:
markers and which one wins), length-capped, parsed by our own grammar (never eval'ed or
sympified), and must match. The README's "Math" paragraph lists every rule; in short:

- Gold text: a whole dataset solution is fine. `extract_gold` takes the text after the last
  "####" (GSM8K), else the last \\boxed{} (MATH), else the text itself.
- Prediction: the answer at the winning marker; without one, the one math span of the last
  sentence ("Thus the minimum value is $-4$."); else a short one-line text as the bare answer.
- Numbers are compared exactly when both sides are exact: 0.5 = 1/2 = \\frac12 = {1 \\over 2},
  1,000 = 1{,}000 = 1\\,000 = 11,\\!000, 2\\frac13 = 7/3, 0.\\overline{3} = 1/3, 3\\times10^4 = 3e4,
  but 0.33 != 1/3 and 1e-20 != 0 (never a tolerance between two exact values).
- Approximation: only for a gold that is an irrational real (\\sqrt2, \\pi, ...), a prediction
  written as a decimal passes when it has >= 3 significant digits and lies within one unit
  of its last digit (rounded or truncated): \\sqrt2 ~ 1.414 or 1.41, not 1.4. A gold written as
  a decimal is an exact rational: gold 1.41 does not accept \\sqrt2. "a \\approx b" reads as b,
  and may also match by a (the exact value written before the approximation).
- Percent: a percent sign on a plain number >= 1 may be dropped ("50%" = "50"), and a percent
  on one side matches its fraction on the other (gold 50% accepts 50%, 50, 0.5; gold 0.5
  accepts 50%). On anything else the sign counts: \\frac34\\% is 3/400, 0.4% is 0.004.
- Degrees: 30^\\circ = 30; a degree answer against a gold with pi converts (30^\\circ = \\pi/6).
- Units and words: a trailing unit or \\text{} word is dropped when only one side has it
  ("5 \\text{cm}" = "5", "36\\pi \\text{ square units}" = 36\\pi, 12^{\\text{th}} = 12); when both
  sides name units they must agree ("5 cm" != "5 m"; no conversions). Text-mode words are never
  letters of a product, and text words between numbers ("12 \\text{ cm or } 13") fail.
- Decimal comma: `DECIMAL_COMMA` / `decimal_comma=` ("auto" by default, see below).
- Solutions: "x = 2 or x = -2", "\\pm 2", "2, -2", "\\{2, -2\\}" are one value set; extra
  values (hedges like "2 or 3" against 2) fail. "x = 3" matches "3", not "y = 3" or "x = -3";
  any left side that only names things is a label: f(2) = 1, (p, q) = (3, 2), a + b = 7.
- Tuples keep order; "(1, 2)" vs "[1, 2]" differ; a set never equals a tuple; a list of tuples
  is order-free. A trailing "..." is part of the answer (1, 2, 3, ... != 1, 2, 3).
- Sets of reals: intervals, unions, inequalities (x > -2 and x < 3, -x > -1, |x| > 1),
  set-builder {x | 0 < x <= 1}, R \\setminus {0}; a gold "(a, b)" next to an inequality reads
  as an open interval. Ratios a:b equal when proportional, and a:b equals the number a/b.
- Matrices: pmatrix/bmatrix/array (also in brackets), a scalar times a matrix; a row or column
  equals a tuple. Multiple choice: "(B) 12" names option B and the value 12.
- Equations equal up to a nonzero constant factor: y = 2x + 1 ~ 2x - y + 1 = 0.
- Expressions are equal when sympy proves the difference is zero (expand / simplify /
  equals); a quick numeric probe rejects clearly different ones first.

Cost and safety: plain numbers are decided with `fractions.Fraction` in-process (most pairs).
Anything else runs sympy in a persistent child process (verifiers/math_worker.py), killed and
replaced when a check exceeds its time limit -> Verdict(False, "timeout ..."). A caller that is
itself a killable worker (the VerifierPool) calls `set_inline(True)` to run sympy in-process.
"""

from __future__ import annotations

import re
from typing import Any, Mapping

from verifiers.base import Verdict, register
from verifiers.extract import boxed_answer, closing_math, final_answer, strip_delimiters
from verifiers.math_compare import compare
from verifiers.math_parse import Node, ParseError, num, parse
from verifiers.math_shape import Shape, shape_of
from verifiers.math_text import CleanAnswer, clean_answer
from verifiers.math_value import FractionJudge, NeedsSympy, TooLarge
from verifiers.math_worker import SympyWorker, WorkerTimeout

NAME = "math"
VERSION = "2.0"
DEFAULT_TIMEOUT = 5.0
"""Seconds one sympy check may take in the worker before it is killed."""
MAX_BARE_ANSWER = 300
"""A prediction without answer markers is taken as the bare answer only when it is this
short and on one line; a long text without a marked answer has no answer."""
DECIMAL_COMMA = "auto"
"""How a comma inside a number reads when it cannot be a thousands separator ("1,22"):
"never": a list separator (1,22 is the values 1 and 22; 1.22 is rejected);
"auto" (default): a decimal comma only where the gold is one decimal number and the prediction
  one number with a single comma not followed by exactly three digits (gold 1.22 accepts 1,22;
  1,500 stays 1500 and never matches 1.5);
"always": every single-comma number is a decimal (1,5 = 1.5 and 1,500 = 1.5), on both sides.
The sources we read (GSM8K, MATH, competition sets) write decimals with a point and group
thousands with commas, so a comma never turns an English answer into a different number; "auto"
only rescues a model that wrote the gold's own decimal with a comma, which is no false positive
because a one-number gold cannot be a two-item list."""
GOLD_SOURCES = ("auto", "####", "boxed", "field")

_INLINE = False
_WORKER = SympyWorker()
_POINT_DECIMAL = re.compile(r"-?\d*\.\d+")
_COMMA_DECIMAL = re.compile(r"-?\d+(?:,|\{,\})(?:\d{1,2}|\d{4,})")
_ANY_COMMA_DECIMAL = re.compile(r"-?\d+(?:,|\{,\})\d+")


def set_inline(inline: bool) -> None:
    """Run sympy checks in this process (for callers that are themselves killable workers)."""
    global _INLINE
    _INLINE = bool(inline)


def extract_gold(text: str, answer_from: str = "auto") -> str | None:
    """The gold answer in a dataset's answer text, None when that source holds none.

    "####": the line after the last "####" (GSM8K); "boxed": the last \\boxed{} (MATH
    solutions); "field": the text itself; "auto": "####" when the text has one, else the last
    box when it has one, else the field. `$...$` delimiters and trailing punctuation go.
    """
    if answer_from not in GOLD_SOURCES:
        raise ValueError(f"answer_from must be one of {GOLD_SOURCES}, not {answer_from!r}")
    if not isinstance(text, str):
        return None
    if answer_from in ("auto", "####") and "####" in text:
        line = text.rsplit("####", 1)[1].strip().split("\n", 1)[0]
        return strip_delimiters(line) or None
    if answer_from == "####":
        return None
    if answer_from in ("auto", "boxed"):
        boxed = boxed_answer(text)
        if boxed is not None or answer_from == "boxed":
            return strip_delimiters(boxed or "") or None
    return strip_delimiters(text) or None


def verify(gold: str, pred: str, timeout: float = DEFAULT_TIMEOUT,
           decimal_comma: str = DECIMAL_COMMA) -> Verdict:
    """Judge `pred` (a whole model output or a bare answer) against the trusted `gold` (a bare
    answer or a whole dataset solution, read by `extract_gold`)."""
    if not isinstance(gold, str) or not gold.strip():
        return _verdict(False, "bad problem: gold answer must be a non-empty string")
    if not isinstance(pred, str):
        return _verdict(False, "no answer: prediction is not text")
    gold_answer = extract_gold(gold)
    if gold_answer is None:
        return _verdict(False, "bad problem: no gold answer in the gold text")
    answer = final_answer(pred) or closing_math(pred)
    if answer is None:
        if len(pred) > 2 * MAX_BARE_ANSWER:
            return _verdict(False, "no final answer found")
        bare = strip_delimiters(pred)
        if not bare or len(bare) > MAX_BARE_ANSWER or "\n" in bare:
            return _verdict(False, "no final answer found")
        answer = bare
    gold_answer, judged = _decimal_commas(gold_answer, answer, decimal_comma)
    try:
        correct, reason = judge_answers(gold_answer, judged, use_sympy=False)
    except NeedsSympy:
        correct, reason = _judge_with_sympy(gold_answer, judged, timeout)
    return _verdict(correct, reason, answer)


def _decimal_commas(gold: str, pred: str, policy: str) -> tuple[str, str]:
    """Apply the decimal-comma policy (DECIMAL_COMMA) to a pair of bare answers."""
    if policy == "always":
        return _comma_as_point(gold), _comma_as_point(pred)
    if policy == "auto" and _POINT_DECIMAL.fullmatch(gold.strip()) and _COMMA_DECIMAL.fullmatch(pred.strip()):
        return gold, _comma_as_point(pred)
    if policy not in ("never", "auto"):
        raise ValueError(f"decimal_comma must be 'never', 'auto' or 'always', not {policy!r}")
    return gold, pred


def _comma_as_point(answer: str) -> str:
    stripped = answer.strip()
    if _ANY_COMMA_DECIMAL.fullmatch(stripped):
        return stripped.replace("{,}", ".").replace(",", ".")
    return answer


class MathVerifier:
    """Registered for task "math": problem["answer"] is the gold answer (or a solution text)."""

    name = NAME
    version = VERSION

    def __init__(self, timeout: float = DEFAULT_TIMEOUT):
        self.timeout = timeout

    def verify(self, problem: Mapping[str, Any], completion: str) -> Verdict:
        gold = problem.get("answer") if isinstance(problem, Mapping) else None
        if isinstance(gold, (int, float)) and not isinstance(gold, bool):
            gold = str(gold)
        if not isinstance(gold, str) or not gold.strip():
            return _verdict(False, "bad problem: no gold 'answer'")
        return verify(gold, completion, self.timeout)


def judge_answers(gold: str, pred: str, use_sympy: bool) -> tuple[bool, str]:
    """(correct, reason) for two bare answers. Without sympy, raises NeedsSympy when the
    Fraction judge cannot decide."""
    try:
        g_clean = clean_answer(gold)
    except ValueError as e:
        return False, f"bad problem: gold {e}"
    try:
        p_clean = clean_answer(pred)
    except ValueError as e:
        return False, f"unparsable answer: {e}"
    if g_clean.unit and p_clean.unit and g_clean.unit != p_clean.unit:
        return False, f"different unit: {p_clean.unit} vs {g_clean.unit}"
    if p_clean.choice and re.search(r"\(\s*[A-E]\s*\)|^\W*(?:or|and)?\W*[A-E]\b", p_clean.text):
        return False, "the answer names more than one option"
    if g_clean.choice and not g_clean.text:
        if p_clean.choice == g_clean.choice:
            return True, f"equal: option ({g_clean.choice})"
        return False, f"gold is option ({g_clean.choice})" + (f", not ({p_clean.choice})" if p_clean.choice else "")
    if p_clean.choice and not p_clean.text:
        return False, f"an option letter ({p_clean.choice}) where gold is a value"
    try:
        g_node = parse(g_clean.text)
    except ParseError as e:
        return _same_text(g_clean, p_clean, f"bad problem: gold unparsable ({e})")
    try:
        p_node = parse(p_clean.text)
    except ParseError as e:
        return _same_text(g_clean, p_clean, f"unparsable answer: {e}")
    judge = _sympy_judge() if use_sympy else FractionJudge()
    try:
        last = (False, "not equal")
        for g_shape, p_shape, label in _readings(g_clean, g_node, p_clean, p_node):
            correct, reason = compare(g_shape, p_shape, judge)
            if correct:
                return True, reason + label
            last = last if label else (correct, reason)
        return last
    except (TooLarge, ValueError, ZeroDivisionError, OverflowError) as e:
        return False, f"rejected: {e}"
    except RecursionError:
        return False, "rejected: expression too deep"
    except NeedsSympy:
        raise
    except Exception as e:  # noqa: BLE001  (sympy may raise anything on odd input; never let it out)
        return False, f"rejected: {type(e).__name__} while comparing"


def _readings(g_clean: CleanAnswer, g_node: Node, p_clean: CleanAnswer, p_node: Node):
    """The (gold shape, pred shape, label) pairs the percent / degree / "≈" policy allows."""
    g_shape, p_shape = shape_of(g_node), shape_of(p_node)
    scalars = g_shape.kind == "scalar" and p_shape.kind == "scalar"
    if g_clean.percent == p_clean.percent or not scalars or _percent_may_drop(g_clean, g_shape, p_shape):
        yield g_shape, p_shape, ""
    for alternative in p_shape.alternatives:
        yield g_shape, alternative, " (the exact value before the approximation)"
    for alternative in g_shape.alternatives:
        yield alternative, p_shape, " (the gold's exact value)"
    if not scalars:
        return
    g, p = g_shape.items[0], p_shape.items[0]
    hundred = num(100)
    if g_clean.percent != p_clean.percent:
        if g_clean.percent:
            yield _scalar(Node("div", (g, hundred)), g_shape), p_shape, " (percent as fraction)"
        else:
            yield g_shape, _scalar(Node("div", (p, hundred)), p_shape), " (percent as fraction)"
    if g_clean.degrees != p_clean.degrees:
        degree_node, other = (g, p) if g_clean.degrees else (p, g)
        if _mentions_pi(other):
            radians = Node("div", (Node("mul", (degree_node, Node("const", value="pi"))), num(180)))
            if g_clean.degrees:
                yield _scalar(radians, g_shape), p_shape, " (degrees as radians)"
            else:
                yield g_shape, _scalar(radians, p_shape), " (degrees as radians)"


def _percent_may_drop(g_clean: CleanAnswer, g_shape: Shape, p_shape: Shape) -> bool:
    """"50%" may stand for "50": only a plain number literal >= 1 carries a droppable sign."""
    node = (g_shape if g_clean.percent else p_shape).items[0]
    if node.kind == "neg":
        node = node.args[0]
    return node.kind == "num" and abs(node.value) >= 1


def _scalar(node: Node, like: Shape) -> Shape:
    return Shape("scalar", (node,), variable=like.variable)


def _mentions_pi(node: Node) -> bool:
    if node.kind == "const" and node.value == "pi":
        return True
    return any(isinstance(a, Node) and _mentions_pi(a) for a in node.args)


def _same_text(gold: CleanAnswer, pred: CleanAnswer, otherwise: str) -> tuple[bool, str]:
    """Answers outside the grammar ("no solution", "(C)") match only as identical text."""
    if _plain_text(gold.text) and _plain_text(gold.text) == _plain_text(pred.text):
        return True, "equal: same text"
    return False, otherwise


def _plain_text(text: str) -> str:
    text = re.sub(r"[\s{}$\\.]", "", text.lower())
    match = re.fullmatch(r"\(([a-z])\)", text)
    return match.group(1) if match else text


def _judge_with_sympy(gold: str, answer: str, timeout: float) -> tuple[bool, str]:
    if _INLINE:
        return judge_answers(gold, answer, use_sympy=True)
    try:
        return _WORKER.judge(gold, answer, timeout)
    except WorkerTimeout as e:
        reason = str(e)
        return False, reason if reason.startswith("timeout") else f"timeout: {reason}"


def _sympy_judge():
    from verifiers.math_sympy import SympyJudge  # imported only where sympy may run

    return SympyJudge()


def _verdict(correct: bool, reason: str, extracted: str | None = None) -> Verdict:
    return Verdict(correct, reason, extracted, None, NAME, VERSION)


register(NAME, MathVerifier())
