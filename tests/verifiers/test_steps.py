"""The column-arithmetic trace format: reference traces pass, every kind of wrong step is found."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from verifiers.steps import (
    StepVerifier, check_steps, format_step, format_trace, parse_steps, reference_steps, spelled_result,
)

ADDITION = StepVerifier("addition")
MULTIPLICATION = StepVerifier("multiplication")


def problem(task: str, a: int, b: int) -> dict:
    result = a + b if task == "addition" else a * b
    return {"task": task, "answer": str(result), "meta": {"operands": [a, b]}}


def trace(lines: list[str]) -> str:
    return "<think>\n" + "\n".join(lines[:-1]) + "\n</think>\n" + lines[-1]


def test_reference_steps_match_the_documented_examples():
    assert reference_steps("addition", [457, 68]) == ["7+8+0=15", "5+6+1=12", "4+0+1=5", "Answer: 525"]
    assert reference_steps("multiplication", [457, 6]) == ["7*6+0=42", "5*6+4=34", "4*6+3=27", "Answer: 2742"]


def test_the_trace_format_wraps_the_steps_in_think_tags_before_the_answer_line():
    lines = reference_steps("addition", [457, 68])
    assert format_trace(lines[:-1], "525") == "<think>\n7+8+0=15\n5+6+1=12\n4+0+1=5\n</think>\nAnswer: 525"
    assert format_trace(lines[:-1], "525") == trace(lines)
    assert check_steps("addition", [457, 68], format_trace(lines[:-1], "525")) == (None, "all 3 steps and the answer are right")


@pytest.mark.parametrize("task, operands", [("addition", [457, 68]), ("multiplication", [457, 6])])
def test_step_lines_read_back_as_the_numbers_they_were_written_from(task, operands):
    lines = reference_steps(task, operands)
    steps = parse_steps(task, "\n".join(lines))
    assert [format_step(task, step) for step in steps] == lines[:-1]
    assert f"Answer: {spelled_result(steps)}" == lines[-1]


def test_final_carry_becomes_the_leading_digit():
    assert reference_steps("addition", [99, 1]) == ["9+1+0=10", "9+0+1=10", "Answer: 100"]
    assert reference_steps("addition", [0, 0]) == ["0+0+0=0", "Answer: 0"]
    assert reference_steps("multiplication", [305, 0])[-1] == "Answer: 0"


@settings(max_examples=150)
@given(st.integers(0, 10**30), st.integers(0, 10**30))
def test_reference_addition_trace_is_accepted_and_sums_right(a, b):
    lines = reference_steps("addition", [a, b])
    assert lines[-1] == f"Answer: {a + b}"
    assert len(lines) - 1 == max(len(str(a)), len(str(b)))
    verdict = ADDITION.verify(problem("addition", a, b), trace(lines))
    assert verdict.correct, verdict.reason
    assert verdict.first_wrong_step is None


@settings(max_examples=150)
@given(st.integers(0, 10**30), st.integers(0, 9))
def test_reference_multiplication_trace_is_accepted(a, b):
    lines = reference_steps("multiplication", [a, b])
    assert lines[-1] == f"Answer: {a * b}"
    verdict = MULTIPLICATION.verify(problem("multiplication", a, b), trace(lines))
    assert verdict.correct, verdict.reason


@settings(max_examples=100)
@given(st.integers(10, 10**12), st.integers(0, 10**12), st.data())
def test_a_corrupted_step_is_reported_at_its_index(a, b, data):
    lines = reference_steps("addition", [a, b])
    index = data.draw(st.integers(0, len(lines) - 2))
    digits_part, total = lines[index].split("=")
    lines[index] = f"{digits_part}={int(total) + 1}"
    verdict = ADDITION.verify(problem("addition", a, b), trace(lines))
    assert not verdict.correct
    assert verdict.first_wrong_step == index
    assert verdict.reason.startswith("lucky:")  # the answer line is still the right sum


@pytest.mark.parametrize(
    "lines, index, words",
    [
        (["7+8+0=15", "5+6+1=12", "4+0+1=5", "Answer: 525"], None, "right"),
        (["7+8+0=15", "5+6+0=11", "4+0+1=5", "Answer: 525"], 1, "carry"),
        (["7+8+0=15", "6+5+1=12", "4+0+1=5", "Answer: 525"], 1, "digits"),
        (["7+8+0=14", "5+6+1=12", "4+0+1=5", "Answer: 525"], 0, "arithmetic"),
        (["7+8+0=15", "4+0+1=5", "Answer: 525"], 1, "digits"),
        (["7+8+0=15", "5+6+1=12", "Answer: 525"], 2, "missing"),
        (["7+8+0=15", "5+6+1=12", "4+0+1=5", "0+0+0=0", "Answer: 525"], 3, "extra"),
        (["7+8+0=15", "5+6+1=12", "4+0+1=5", "Answer: 524"], 3, "answer 524"),
        (["7+8+0=15", "5+6+1=12", "4+0+1=5", "done"], 3, "no final answer"),
        (["75+68+0=143", "Answer: 525"], 0, "digits"),
    ],
)
def test_first_wrong_step_for_each_kind_of_mistake(lines, index, words):
    first_wrong, reason = check_steps("addition", [457, 68], "\n".join(lines))
    assert first_wrong == index
    assert words in reason


def test_multiplication_checks_carry_and_product():
    right = ["7*6+0=42", "5*6+4=34", "4*6+3=27", "Answer: 2742"]
    assert check_steps("multiplication", [457, 6], "\n".join(right)) == (None, "all 3 steps and the answer are right")
    wrong_carry = ["7*6+0=42", "5*6+2=32", "4*6+3=27", "Answer: 2742"]
    assert check_steps("multiplication", [457, 6], "\n".join(wrong_carry))[0] == 1
    wrong_digit = ["7*5+0=35", "5*6+4=34", "4*6+3=27", "Answer: 2742"]
    assert check_steps("multiplication", [457, 6], "\n".join(wrong_digit))[0] == 0


def test_prose_and_whitespace_around_steps_are_tolerated():
    completion = "Let me add column by column.\n<think> 7 + 8 + 0 = 15\n\t5+6+1 =12 \n4+0+1=5</think>\nSo...\nAnswer: 525."
    verdict = ADDITION.verify(problem("addition", 457, 68), completion)
    assert verdict.correct, verdict.reason
    assert verdict.extracted == "525"


def test_step_inside_a_sentence_is_not_a_step_line():
    assert parse_steps("addition", "we get 7+8+0=15 here\n5+6+1=12") == [(5, 6, 1, 12)]


def test_right_answer_with_a_wrong_step_is_rejected_as_lucky():
    completion = "7+8+0=15\n5+6+1=13\n4+0+1=5\nAnswer: 525"
    verdict = ADDITION.verify(problem("addition", 457, 68), completion)
    assert not verdict.correct
    assert verdict.reason.startswith("lucky:")
    assert verdict.first_wrong_step == 1


def test_answer_without_steps_is_lucky_at_step_zero():
    verdict = ADDITION.verify(problem("addition", 457, 68), "Answer: 525")
    assert (verdict.correct, verdict.first_wrong_step) == (False, 0)
    assert verdict.reason.startswith("lucky:")


@pytest.mark.parametrize(
    "task, bad",
    [
        ("addition", {"task": "addition", "answer": "3", "meta": {"operands": [1, -2]}}),
        ("addition", {"task": "addition", "answer": "3", "meta": {"operands": [1]}}),
        ("addition", {"task": "addition", "answer": "4", "meta": {"operands": [1, 2]}}),
        ("addition", {"task": "addition", "answer": "3", "meta": {"operands": [True, 2]}}),
        ("addition", {"task": "addition", "answer": "3"}),
        ("addition", {"task": "addition", "answer": "3", "meta": None}),
        ("multiplication", {"task": "multiplication", "answer": "24", "meta": {"operands": [2, 12]}}),
    ],
)
def test_malformed_problems_are_bad_problems(task, bad):
    verdict = StepVerifier(task).verify(bad, "1+2+0=3\nAnswer: 3")
    assert not verdict.correct
    assert verdict.reason.startswith("bad problem")


def test_reference_steps_refuse_operands_outside_the_format():
    with pytest.raises(ValueError):
        reference_steps("multiplication", [12, 34])
    with pytest.raises(ValueError):
        reference_steps("subtraction", [1, 2])


def test_digit_string_operands_of_any_length_work():
    a, b = "9" * 5000, "1"
    lines = reference_steps("addition", [a, b])
    assert lines[-1] == "Answer: 1" + "0" * 5000


junk = st.one_of(
    st.text(max_size=3000),
    st.binary(max_size=3000).map(lambda raw: raw.decode("latin-1")),
    st.lists(st.sampled_from(["7+8+0=15", "5+6+1=12", "<think>", "</think>", "Answer:", "525", "\n", "＋", "١"]))
    .map("".join),
)


@settings(max_examples=200, deadline=None)
@given(junk)
def test_any_text_gets_a_verdict_with_a_reason(text):
    for verifier, p in ((ADDITION, problem("addition", 457, 68)), (MULTIPLICATION, problem("multiplication", 457, 6))):
        verdict = verifier.verify(p, text)
        assert verdict.reason
        assert verdict.verifier == verifier.name


@pytest.mark.parametrize("text", ["7+8+0=15\n" * 120_000, "9" * 1_000_000, "\x00\xff" * 500_000, None])
def test_huge_or_non_text_completions_get_a_verdict(text):
    verdict = ADDITION.verify(problem("addition", 457, 68), text)
    assert not verdict.correct
    assert verdict.reason
