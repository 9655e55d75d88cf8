"""Final-answer extraction from whole model outputs (verifiers/extract.py)."""

import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from verifiers.extract import final_answer


@pytest.mark.parametrize(
    "text, expected",
    [
        (r"First 3 + 4 = 7, so the total is $\boxed{12}$.", "12"),
        (r"$\boxed{\frac{1}{2}}$", r"\frac{1}{2}"),
        (r"nested \boxed{\frac{\sqrt{2}}{2}} done", r"\frac{\sqrt{2}}{2}"),
        (r"\fbox{42}", "42"),
        (r"\boxed 7", "7"),
        (r"try \boxed{3}, no wait, \boxed{4}" + "\nso the answer is above", "4"),
        (r"x = \boxed{2} or x = \boxed{-2}", "2, -2"),
        (r"\boxed{\boxed{4}}", "4"),
        (r"\boxed{\{1, 2\}}", r"\{1, 2\}"),
        ("Final Answer: The final answer is $5$. I hope it is correct.", "5"),
        ("Step 1: 12 apples. The answer is 17.", "17"),
        ("We compute things.\nAnswer: 0.25.", "0.25"),
        ("answer:\n42", "42"),
        ("The final answer is: $\\frac{3}{4}$", "\\frac{3}{4}"),
        ("ANSWER = 3.5", "3.5"),
        ("We get 12 along the way.\nSo it is **42**", "42"),
        ("The answer is **(B)**.", "(B)"),
        ("so the answer is \\(x = 3\\).", "x = 3"),
        (r"\boxed{5!}", "5!"),  # a factorial, not an exclamation
        ("Answer: .5.", ".5"),  # a leading point is a decimal point
    ],
)
def test_finds_the_final_answer(text, expected):
    assert final_answer(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "We found 12, then 15, then 19.",  # an intermediate number is never the answer
        r"so it is \boxed{}",
        r"so it is \boxed{ }",
        r"unbalanced \boxed{3",
        "The answer is",
    ],
)
def test_no_answer_gives_none(text):
    assert final_answer(text) is None


def test_box_wins_over_a_later_intermediate_phrase():
    text = r"The answer is \boxed{5}. (Earlier I thought the answer is 4.)"
    assert final_answer(text) == "5"


def test_ignores_non_string_input():
    assert final_answer(None) is None  # type: ignore[arg-type]
    assert final_answer(b"\\boxed{1}") is None  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "junk",
    [
        "1 " * 2_500_000 + r"\boxed{7}",
        "{" * 5_000_000,
        r"\boxed{" * 700_000,
        r"\boxed " * 600_000,
        "answer: " * 600_000,
        "**a** " * 800_000,
    ],
    ids=["numbers", "braces", "open-boxes", "bare-boxes", "phrases", "bold"],
)
def test_five_megabytes_cost_little(junk):
    started = time.perf_counter()
    final_answer(junk)
    # Generous bound: a quadratic scan of 5 MB would take minutes, not seconds.
    assert time.perf_counter() - started < 2.0


def test_answer_at_the_end_of_a_huge_output_is_found():
    assert final_answer("filler " * 700_000 + r"\boxed{99}") == "99"


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=3000))
def test_any_text_gives_str_or_none(text):
    found = final_answer(text)
    assert found is None or (isinstance(found, str) and found.strip())
