"""Math answer verifier: is the model's final answer equivalent to the gold answer?

    from verifiers.math import verify
    verify("\\frac{1}{2}", "... so the answer is $\\boxed{0.5}$")   # Verdict(correct=True, ...)

Policy (gold first, asymmetric on purpose). Gold is trusted: it sets the expected shape
(a set is order-free, a tuple ordered, an interval cares about brackets) and may be parsed
generously. The prediction is untrusted model text: it is extracted (verifiers/extract.py),
length-capped, parsed by our own grammar (never eval'ed or sympified), and must match.

- Numbers are compared exactly when both sides are exact: 0.5 = 1/2 = \\frac12 = 50%-of-1,
  1,000 = 1{,}000 = 1 000, 2\\frac13 = 7/3, 0.\\overline{3} = 1/3, 3\\times10^4 = 3e4, but
  0.33 != 1/3 and 1e-20 != 0 (never a tolerance between two exact values).
- Approximation: only for a gold that is an irrational real (\\sqrt2, \\pi, ...), a prediction
  written as a decimal passes when it has >= 3 significant digits and lies within one unit
  of its last digit (rounded or truncated): \\sqrt2 ~ 1.414 or 1.41, not 1.4. A gold written as
  a decimal is an exact rational: gold 1.41 does not accept \\sqrt2.
- Percent: "50%" and "50" name the same number (answers often drop the sign), and a percent
  on one side also matches its fraction on the other: gold 50% accepts 50%, 50, 0.5;
  gold 0.5 accepts 50%. Nothing else (gold 50% rejects 5 and 0.05).
- Degrees: 30^\\circ = 30; a degree answer against a gold with pi converts (30^\\circ = \\pi/6).
- Units: a trailing unit or \\text{} word is dropped when only one side has it ("5 \\text{cm}"
  = "5"); when both sides name units they must agree ("5 cm" != "5 m"; no conversions).
- Solutions: "x = 2 or x = -2", "\\pm 2", "2, -2", "\\{2, -2\\}" are one value set; extra
  values (hedges like "2 or 3" against 2) fail. "x = 3" matches "3", not "y = 3" or "x = -3".
- Tuples keep order; "(1, 2)" vs "[1, 2]" differ; a set never equals a tuple. A gold "(a, b)"
  next to an inequality reads as an open interval: (1, 2] = "1 < x \\le 2".
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
from verifiers.extract import final_answer, strip_delimiters
from verifiers.math_compare import compare
from verifiers.math_parse import Node, ParseError, num, parse
from verifiers.math_text import CleanAnswer, clean_answer
from verifiers.math_value import FractionJudge, NeedsSympy, Shape, TooLarge, shape_of
from verifiers.math_worker import SympyWorker, WorkerTimeout

NAME = "math"
VERSION = "1.0"
DEFAULT_TIMEOUT = 5.0
"""Seconds one sympy check may take in the worker before it is killed."""
MAX_BARE_ANSWER = 300
"""A prediction without answer markers is taken as the bare answer only when it is this
short and on one line; a long text without a marked answer has no answer."""

_INLINE = False
_WORKER = SympyWorker()


def set_inline(inline: bool) -> None:
    """Run sympy checks in this process (for callers that are themselves killable workers)."""
    global _INLINE
    _INLINE = bool(inline)


def verify(gold: str, pred: str, timeout: float = DEFAULT_TIMEOUT) -> Verdict:
    """Judge `pred` (a whole model output or a bare answer) against the trusted `gold`."""
    if not isinstance(gold, str) or not gold.strip():
        return _verdict(False, "bad problem: gold answer must be a non-empty string")
    if not isinstance(pred, str):
        return _verdict(False, "no answer: prediction is not text")
    answer = final_answer(pred)
    if answer is None:
        if len(pred) > 2 * MAX_BARE_ANSWER:
            return _verdict(False, "no final answer found")
        bare = strip_delimiters(pred)
        if not bare or len(bare) > MAX_BARE_ANSWER or "\n" in bare:
            return _verdict(False, "no final answer found")
        answer = bare
    gold = _generous_gold(gold)
    try:
        correct, reason = judge_answers(gold, answer, use_sympy=False)
    except NeedsSympy:
        correct, reason = _judge_with_sympy(gold, answer, timeout)
    return _verdict(correct, reason, answer)


def _generous_gold(gold: str) -> str:
    """Gold is trusted but may arrive boxed or in `$...$` (a solution text's last line)."""
    if "\\boxed" in gold or "\\fbox" in gold:
        gold = final_answer(gold) or gold
    return strip_delimiters(gold) or gold


class MathVerifier:
    """Registered for task "math": problem["answer"] is the gold answer."""

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
    """The (gold shape, pred shape, label) pairs the percent / degree policy allows."""
    g_shape, p_shape = shape_of(g_node), shape_of(p_node)
    yield g_shape, p_shape, ""
    if g_shape.kind != "scalar" or p_shape.kind != "scalar":
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
