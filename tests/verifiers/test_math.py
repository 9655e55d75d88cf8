"""The math answer verifier (verifiers/math.py and its math_* modules), with real sympy and
the real worker subprocess."""

import json
import os
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import verifiers
from verifiers import math as math_verifier
from verifiers.math import extract_gold, verify

DATA = Path(__file__).parent / "data"
PAIRS = [json.loads(line) for line in (DATA / "math_pairs.jsonl").read_text().splitlines() if line.strip()]
OUTPUTS = [json.loads(line) for line in (DATA / "math_outputs.jsonl").read_text().splitlines() if line.strip()]


def test_labelled_pairs_have_no_false_positive_and_high_accuracy():
    wrong = []
    false_positives = []
    for pair in PAIRS:
        verdict = verify(pair["gold"], pair["pred"])
        if verdict.correct != pair["equal"]:
            wrong.append((pair, verdict.reason))
            if verdict.correct:
                false_positives.append((pair, verdict.reason))
    assert len(PAIRS) >= 300
    assert false_positives == []
    assert 1 - len(wrong) / len(PAIRS) >= 0.95, wrong


def test_labelled_set_is_mostly_near_misses_across_categories():
    negatives = sum(not p["equal"] for p in PAIRS) / len(PAIRS)
    assert 0.3 <= negatives <= 0.5
    assert len({p["category"] for p in PAIRS}) >= 20


def test_whole_model_outputs_have_no_false_positive_and_high_accuracy():
    """tests/verifiers/data/math_outputs.jsonl: long outputs in the styles of current and older
    models (written by make_math_outputs.py); bench/verifiers.py prints it per class."""
    wrong, false_positives = [], []
    for row in OUTPUTS:
        verdict = verify(row["gold"], row["pred"])
        if verdict.correct != row["equal"]:
            wrong.append((row["class"], row["gold"], row["pred"][-80:], verdict.reason))
            if verdict.correct:
                false_positives.append(wrong[-1])
    assert false_positives == []
    assert 1 - len(wrong) / len(OUTPUTS) >= 0.95, wrong


def test_whole_model_output_set_is_labelled_by_class_with_near_misses():
    assert len(OUTPUTS) >= 300
    assert all(set(row) == {"gold", "pred", "equal", "category", "class"} for row in OUTPUTS)
    assert 0.35 <= sum(not row["equal"] for row in OUTPUTS) / len(OUTPUTS) <= 0.45
    classes = Counter(row["class"] for row in OUTPUTS)
    assert len(classes) >= 20 and min(classes.values()) >= 4
    assert sum(len(row["pred"]) > 200 for row in OUTPUTS) / len(OUTPUTS) > 0.8  # whole outputs


@pytest.mark.parametrize(
    "text, answer_from, expected",
    [
        ("Natalia sold 48/2 = <<48/2=24>>24 clips.\nSo 48+24 = <<48+24=72>>72 in all.\n#### 72", "auto", "72"),
        ("Natalia sold 48/2 = <<48/2=24>>24 clips.\n#### 72", "####", "72"),
        ("The area is $\\boxed{\\frac{5}{2}}$.", "auto", "\\frac{5}{2}"),
        ("first $\\boxed{3}$, then $\\boxed{4}$", "boxed", "4"),
        ("$\\frac12$", "auto", "\\frac12"),
        ("$\\frac12$", "field", "\\frac12"),
        ("no marker here", "####", None),
        ("no box here", "boxed", None),
        ("#### 5 and \\boxed{6}", "field", "#### 5 and \\boxed{6}"),
    ],
)
def test_extract_gold_reads_the_named_source(text, answer_from, expected):
    assert extract_gold(text, answer_from) == expected


def test_extract_gold_refuses_an_unknown_source():
    with pytest.raises(ValueError):
        extract_gold("5", "last-line")


def test_a_whole_gold_solution_is_read_for_its_answer():
    gsm8k = "Weng earns 12/60 = $<<12/60=0.2>>0.2 per minute.\nShe earned 0.2 x 50 = $<<0.2*50=10>>10.\n#### 10"
    assert verify(gsm8k, "So she earned $10.\n#### 10").correct
    assert verify(gsm8k, "She earned 0.2 * 50 = 10 dollars.\nA: 10").correct
    assert not verify(gsm8k, "The answer is 12.").correct
    assert verify("so the answer is $\\boxed{\\frac{5}{2}}$.", "\\boxed{2.5}").correct


@pytest.mark.parametrize(
    "policy, gold, pred, correct",
    [
        ("auto", "1.22", "1,22", True),
        ("auto", "1.5", "1,500", False),  # three digits after the comma: thousands, 1500
        ("auto", "1500", "1,500", True),
        ("auto", "1, 22", "1,22", True),  # a two-value gold: the comma separates
        ("never", "1.22", "1,22", False),
        ("always", "1.5", "1,500", True),
        ("always", "1,5", "1.5", True),
    ],
)
def test_decimal_comma_policy(policy, gold, pred, correct):
    assert verify(gold, pred, decimal_comma=policy).correct is correct


@pytest.mark.parametrize(
    "gold, pred, correct",
    [
        # markers real models write
        ("26", "She has 20 + 6 = 26 apples.\nA: 26", True),
        ("18", "Janet sells 16 - 3 - 4 = <<16-3-4=9>>9 eggs.\n#### 18", True),
        ("5", "The answer is 5, since 2+3=5.", True),
        ("-4", "Completing the square gives $(x+2)^2 - 4$. Thus the minimum value is $-4$.", True),
        ("10455", "Part one: $\\boxed{255}$.\nThe final answer is $10,455$.", True),
        ("255", "Part one: $\\boxed{255}$.\nThe final answer is $10,455$.", False),
        ("2, 3", "The roots are $\\boxed{2}$ and $\\boxed{3}$.", True),
        ("B", "The answer is (B) 12.", True),
        ("12", "The answer is (B) 12.", True),
        ("C", "The answer is (B) 12.", False),
        ("A", "The answer is (A) or (B).", False),
        ("A", "\\boxed{(A), (C)}", False),
        ("2", "The final answer is $2$ (or maybe $3$).", False),
        # forms
        ("(1,2),(3,4)", "\\{(3,4),(1,2)\\}", True),
        ("(1,2),(3,4)", "(2,1),(4,3)", False),
        ("3:2", "6:4", True),
        ("3:2", "2:3", False),
        ("3:2", "\\frac32", True),
        ("(3,2)", "(p,q)=(3,2)", True),
        ("1", "f(2)=1", True),
        ("f(x)=2x+1", "2x+1", True),
        ("3", "x = 2 + 1 = 3", True),
        ("6", "2x = 6", False),
        ("\\frac{22}{7}", "\\frac{22}{7} \\approx 3.14", True),
        ("\\sqrt{2}", "\\approx 1.414", True),
        ("\\frac13", "\\frac13\\text{ meters}", True),
        ("36\\pi", "36\\pi \\text{ square units}", True),
        ("36\\pi", "36 \\text{ square units}", False),
        ("12", "12^{\\text{th}}", True),
        ("x", "x \\text{ cm}", True),  # text words are a unit, never c*m
        ("\\frac52", "{5 \\over 2}", True),
        ("(-\\infty,0)\\cup(0,\\infty)", "\\mathbb{R}\\setminus\\{0\\}", True),
        ("(0,1]", "\\{x \\mid 0<x\\le 1\\}", True),
        ("[0,1]", "\\{x \\mid 0<x\\le 1\\}", False),
        ("\\begin{pmatrix} 1 & 2 \\\\ 3 & 4 \\end{pmatrix}",
         "\\left[\\begin{array}{cc} 1 & 2 \\\\ 3 & 4 \\end{array}\\right]", True),
        ("\\begin{pmatrix} 2 \\\\ 4 \\end{pmatrix}", "2\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}", True),
        ("(-2,3)", "x>-2 \\text{ and } x<3", True),
        ("(-2,3)", "x>-2 \\text{ or } x<3", False),
        ("(-\\infty,1)", "-x>-1", True),
        ("(-\\infty,-1)\\cup(1,\\infty)", "|x|>1", True),
        ("3", "\\log_{10} 1000", True),
        ("11111111", "11,\\!111,\\!111", True),
        ("(2,-1)", "x=2, y=-1", True),
        ("1, 2", "x_1 = 1, x_2 = 2", True),
        ("30", "m\\angle A = 30^\\circ", True),
        ("\\sqrt{5}", "|AB| = \\sqrt5", True),
        ("a=2, b=3", "b=3, a=2", True),
        ("a=2, b=3", "a=3, b=2", False),
        ("3", "x=3 \\text{ (double root)}", True),
        ("2", "2 \\text{ (or maybe 3)}", False),
        ("18", "18 (dollars)", True),
        ("(-\\infty,\\infty)", "\\text{all real numbers}", True),
        ("\\emptyset", "\\text{no solution}", True),
        ("42", "First 3 + 4 = 7.\n\nSo she has 42 apples left.", True),
        ("7", "First $3 + 4 = 7$.\n\nThen we multiply 7 by", False),  # cut off: no answer
        ("26", "She has 26 apples.\nA: 26<|eot_id|>", True),
        # false positives closed
        ("1, 2, 3", "1, 2, 3, \\ldots", False),
        ("1, 2, 3", "1, 2, 3, ...", False),
        ("2, 4, 6, \\ldots", "2, 4, 6, \\dots", True),
        ("\\frac34", "\\frac34\\%", False),
        ("75", "75\\%", True),
        ("0.4", "0.4\\%", False),
    ],
)
def test_answer_forms_of_real_outputs(gold, pred, correct):
    verdict = verify(gold, pred)
    assert verdict.correct is correct, verdict.reason


@pytest.mark.parametrize(
    "gold, pred, correct, reason_part",
    [
        ("\\frac{1}{3}", "0.33", False, "not equal"),
        ("0", "1e-20", False, "not equal"),
        ("\\sqrt{2}", "1.414", True, "equal"),
        ("5 cm", "5 m", False, "different unit"),
        ("2", "2 or 3", False, "extra answers"),
        ("\\{1,2\\}", "(1,2)", False, "set vs tuple"),
        ("x=3", "y=3", False, "different variable"),
        ("50\\%", "0.5", True, "percent"),
        ("y=2x+1", "2x-y+1=0", True, "equivalent equations"),
    ],
)
def test_reasons_say_which_rule_decided(gold, pred, correct, reason_part):
    verdict = verify(gold, pred)
    assert verdict.correct is correct
    assert reason_part in verdict.reason
    assert verdict.verifier == "math" and verdict.version == math_verifier.VERSION


def test_extracted_answer_is_reported():
    verdict = verify("12", "3 * 4 = 12, so the answer is $\\boxed{12}$.")
    assert verdict.correct and verdict.extracted == "12"


def test_long_output_without_a_marked_answer_has_no_answer():
    verdict = verify("7", "I tried 3, then 5,\nthen 7 and I am unsure.")
    assert not verdict.correct and verdict.reason == "no final answer found"


@pytest.mark.parametrize("gold", ["\\boxed{\\frac{1}{2}}", "$\\frac12$", "The answer is $\\boxed{0.5}$."])
def test_gold_may_arrive_boxed_or_in_dollars(gold):
    assert verify(gold, "1/2").correct
    assert not verify(gold, "1/3").correct


@pytest.mark.parametrize("pred", ["12 \\text{ maybe } 13", "12 \\text{ or } 13", "12 \\text{ cm or } 13"])
def test_words_between_numbers_are_a_hedge_not_a_unit(pred):
    assert not verify("12", pred).correct


def test_registered_for_task_math():
    assert "math" in verifiers.tasks()
    verdict = verifiers.verify({"task": "math", "answer": "1/2"}, "so $\\boxed{0.5}$")
    assert verdict.correct and verdict.verifier == "math"


@pytest.mark.parametrize("problem", [{"task": "math"}, {"task": "math", "answer": ""},
                                     {"task": "math", "answer": None}])
def test_problem_without_gold_is_a_bad_problem(problem):
    verdict = verifiers.verify(problem, "\\boxed{1}")
    assert not verdict.correct and verdict.reason.startswith("bad problem")


def test_numeric_gold_in_a_problem_row_is_accepted():
    assert verifiers.verify({"task": "math", "answer": 12}, "\\boxed{12}").correct


def test_model_text_is_never_evaluated(tmp_path):
    marker = tmp_path / "pwned"
    payload = f"__import__('os').system('touch {marker}')"
    for pred in (payload, f"\\boxed{{{payload}}}", f"x + {payload}"):
        verdict = verify("x + 1", pred)
        assert not verdict.correct
    assert not marker.exists()


@pytest.mark.parametrize(
    "pred",
    [
        "10^{10^{10}}",
        "9**9**9",
        "2^{2^{2^{2^{2^{2}}}}}",
        "(" * 5000 + "1" + ")" * 5000,
        "\\frac{" * 3000 + "1",
        "\\sqrt{" * 2000 + "2" + "}" * 2000,
        "1" * 5000,
        "x" * 1500,
        "(((((1",
        "\\boxed{\\frac{1}{2}",
        bytes(range(256)).decode("latin-1"),
        "１２",
        "аbс",  # Cyrillic a and c
        "1\u200b2",
        "\\begin{pmatrix}" + "1&" * 500 + "\\end{pmatrix}",
        "100!!!!",
        "\\binom{100000000}{50000000}",
    ],
    ids=lambda p: repr(p[:20]),
)
def test_hostile_answers_get_a_verdict(pred):
    # How long each takes is measured in bench/verifiers.py (hostile inputs), not asserted here.
    verdict = verify("12", pred)
    assert isinstance(verdict.reason, str) and verdict.reason
    assert not verdict.correct or pred == "１２"


def test_five_megabyte_output_gets_a_verdict():
    verdict = verify("7", "step " * 1_000_000 + "\\boxed{7}")
    assert verdict.correct
    verdict = verify("7", "{" * 5_000_000)
    assert not verdict.correct


def test_huge_exponent_is_refused_with_a_reason():
    verdict = verify("5", "9^{9^{9}}")
    assert not verdict.correct and "too large" in verdict.reason


def test_timeout_kills_the_worker_and_the_next_check_gets_a_fresh_one():
    math_verifier.set_inline(False)
    assert verify("\\sqrt{8}", "2\\sqrt{2}").correct  # starts the worker
    old_pid = math_verifier._WORKER.pid
    assert old_pid is not None
    verdict = verify("\\sin^2 x + \\cos^2 x", "1", timeout=0.001)
    assert not verdict.correct and verdict.reason.startswith("timeout")
    assert not _alive(old_pid)
    assert verify("\\sin^2 x + \\cos^2 x", "1").correct
    new_pid = math_verifier._WORKER.pid
    assert new_pid is not None and new_pid != old_pid


def test_inline_mode_runs_sympy_in_this_process():
    math_verifier.set_inline(True)
    try:
        math_verifier._WORKER.close()
        assert verify("x^2-1", "(x-1)(x+1)").correct
        assert not verify("x^2-1", "(x-1)^2").correct
        assert math_verifier._WORKER.pid is None  # no child was needed
    finally:
        math_verifier.set_inline(False)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}").exists() and "zombie" not in Path(f"/proc/{pid}/status").read_text()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=400), st.sampled_from(["12", "\\frac{1}{2}", "x^2+1", "(1,2]", "\\{1,2\\}"]))
def test_any_text_gives_a_verdict_never_raises(pred, gold):
    verdict = verify(gold, pred)
    assert isinstance(verdict.correct, bool) and verdict.reason


_MATHY = st.text(alphabet="0123456789x+-*/^()[]{},.=<> \\fracsqrtpi", max_size=60)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_MATHY, _MATHY)
def test_any_math_like_pair_gives_a_verdict_never_raises(gold, pred):
    verdict = verify(gold or "1", pred)
    assert isinstance(verdict.correct, bool) and verdict.reason
