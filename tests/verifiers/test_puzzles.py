"""Puzzle verifiers: right answers in the ways models write them pass, wrong and hedged ones fail."""

from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from verifiers.puzzles import (
    ArithmeticPuzzleVerifier,
    ChoiceVerifier,
    CipherVerifier,
    CompareVerifier,
    LetterCountVerifier,
    decode_pairs,
    evaluate,
)

GAME24 = ArithmeticPuzzleVerifier("game24", use_all_default=True)
COUNTDOWN = ArithmeticPuzzleVerifier("countdown", use_all_default=False)
G24 = {"task": "game24", "answer": "24", "meta": {"numbers": [4, 7, 8, 8]}}


@pytest.mark.parametrize(
    "completion",
    [
        "Answer: (7 - 8/8) * 4",
        "The answer is (7-(8/8))×4.",
        "so $\\boxed{(7 - 8 \\div 8) \\times 4 = 24}$",
        "Trying pairs...\n(7 − 8 ÷ 8) × 4 = 24",
        "Answer: [7-(8/8)] x 4 = 24",
        "Answer: 4(7-8/8)",
        "Answer: \\left(7-\\frac{8}{8}\\right)\\cdot 4",
        "(7-8/8)*4 = 24\nThe answer is 24.",
        "7-8/8 = 6\n(7-8/8)*4 = 24\n**Done!**",
    ],
)
def test_game24_accepts_a_right_expression_however_written(completion):
    verdict = GAME24.verify(G24, completion)
    assert verdict.correct, verdict.reason


@pytest.mark.parametrize(
    "completion, reason",
    [
        ("Answer: 8*3", "beyond the given numbers"),
        ("Answer: 7*4 - 8/8 + 8 - 8 - 4", "beyond the given numbers"),
        ("Answer: (7+8+8)+4", "equals 27"),
        ("Answer: 4*(7-8/8)**1", "Pow"),
        ("Answer: -4*(-7+8/8)", "unary"),
        ("Answer: 8/(8-8)+7+4", "division by zero"),
        ("Answer: 4.0*(7-8/8)", "not an integer"),
        ("Answer: abs(4)*(7-8/8)", "not allowed"),
        ("Answer: (7-8/8)*4 = 25", "states the result is 25"),
        ("I could not find a way.", "no expression"),
        ("The answer is 24", "beyond the given numbers"),
        ("Answer: 7+8+8", "does not use [4]"),
    ],
)
def test_game24_rejects_with_a_reason(completion, reason):
    verdict = GAME24.verify(G24, completion)
    assert not verdict.correct
    assert reason in verdict.reason


def test_game24_arithmetic_is_exact():
    verdict = GAME24.verify({"answer": "24", "meta": {"numbers": [3, 3, 8, 8]}}, "Answer: 8/(3-8/3)")
    assert verdict.correct, verdict.reason
    assert evaluate("1/3*3") == (Fraction(1), [1, 3, 3])


def test_game24_target_comes_from_meta_or_answer():
    p = {"answer": "10", "meta": {"numbers": [1, 2, 3, 4]}}
    assert GAME24.verify(p, "Answer: 1+2+3+4").correct
    sample_solution_as_gold = {"answer": "(7-8/8)*4", "meta": {"numbers": [4, 7, 8, 8]}}
    assert GAME24.verify(sample_solution_as_gold, "Answer: 4*(7-8/8)").correct
    clash = {"answer": "10", "meta": {"numbers": [1, 2, 3, 4], "target": 24}}
    assert GAME24.verify(clash, "Answer: 1+2+3+4").reason.startswith("bad problem")


COUNT = {"task": "countdown", "answer": "100", "meta": {"numbers": [25, 50, 75, 100, 3, 6], "target": 100}}


@pytest.mark.parametrize(
    "meta_extra, completion, correct",
    [
        ({}, "Answer: 100", True),
        ({}, "Answer: 75 + 25", True),
        ({}, "Answer: (6-3)*25+50/(75-25)", False),  # uses 25 twice
        ({}, "Answer: (50 + 6*3) + 50 - 18", False),
        ({"use_all": True}, "Answer: 75 + 25", False),
        ({"use_all": True}, "Answer: 100*(75-50-25+3-3+6-6+1)", False),
        ({"use_all": True}, "Answer: 100 + (75-50-25)*3*6", True),
    ],
)
def test_countdown_number_use_and_target(meta_extra, completion, correct):
    p = {**COUNT, "meta": {**COUNT["meta"], **meta_extra}}
    assert COUNTDOWN.verify(p, completion).correct is correct


@st.composite
def arithmetic_puzzles(draw):
    """A random expression over random numbers; its exact value is the target when whole."""
    numbers = draw(st.lists(st.integers(1, 13), min_size=1, max_size=6))
    text = str(numbers[0])
    for n in numbers[1:]:
        op = draw(st.sampled_from("+-*/"))
        text = f"({text}{op}{n})" if draw(st.booleans()) else f"({n}{op}{text})"
    return numbers, text


@settings(max_examples=200)
@given(arithmetic_puzzles())
def test_any_expression_that_hits_its_target_is_accepted(puzzle):
    numbers, text = puzzle
    try:
        value, used = evaluate(text)
    except ZeroDivisionError:
        return
    assert sorted(used) == sorted(numbers)
    if value.denominator != 1:
        return
    p = {"answer": str(value.numerator), "meta": {"numbers": numbers, "use_all": True}}
    assert COUNTDOWN.verify(p, f"Answer: {text}").correct
    # One extra use of a given number is always caught.
    assert not COUNTDOWN.verify(p, f"Answer: {text}+{numbers[0]}-{numbers[0]}").correct


def encode_pairs(plaintext: str, shift: int) -> str:
    """Test helper: the inverse of decode_pairs, spreading each letter into a pair."""
    words = []
    for word in plaintext.split():
        pair = []
        for ch in word:
            k = min(shift, ord(ch) - 97, 122 - ord(ch))
            pair.append(chr(ord(ch) - k) + chr(ord(ch) + k))
        words.append("".join(pair))
    return " ".join(words)


def test_cipher_decodes_the_o1_example():
    assert decode_pairs("oyfjdnisdr rtqwainr acxz mynzbhhx") == "think step by step"


@given(st.lists(st.text("abcdefghijklmnopqrstuvwxyz", min_size=1, max_size=8), min_size=1, max_size=6), st.integers(0, 12))
def test_cipher_decoding_inverts_encoding(words, shift):
    plaintext = " ".join(words)
    assert decode_pairs(encode_pairs(plaintext, shift)) == plaintext


CIPHER = {"task": "cipher", "answer": "Think step by step", "meta": {"ciphertext": "oyfjdnisdr rtqwainr acxz mynzbhhx"}}


@pytest.mark.parametrize(
    "completion, correct",
    [
        ("Answer: think step by step", True),
        ('The answer is "THINK   STEP BY STEP."', True),
        ("\\boxed{Think step by step}", True),
        ("Answer: think step by stop", False),
        ("Answer: think step", False),
        ("no idea", False),
    ],
)
def test_cipher_compares_plaintext_loosely_but_wholly(completion, correct):
    assert CipherVerifier().verify(CIPHER, completion).correct is correct


@pytest.mark.parametrize("bad", ["oyf", "oz", "", "o1"])
def test_cipher_with_undecodable_ciphertext_is_a_bad_problem(bad):
    verdict = CipherVerifier().verify({"answer": "x", "meta": {"ciphertext": bad}}, "Answer: x")
    assert verdict.reason.startswith("bad problem")


def test_cipher_gold_must_match_the_decoding():
    wrong_gold = {**CIPHER, "answer": "think fast"}
    assert CipherVerifier().verify(wrong_gold, "Answer: think fast").reason.startswith("bad problem")


STRAWBERRY = {"task": "letter_count", "answer": "3", "meta": {"word": "strawberry", "letter": "r"}}


@pytest.mark.parametrize(
    "completion, correct",
    [
        ("Answer: 3", True),
        ("The answer is three.", True),
        ("**3**", True),
        ("Answer: 3 r's", True),
        ("Answer: 2", False),
        ("Answer: 2 or 3", False),
        ("Answer: many", False),
        ("Answer: 3.5", False),
    ],
)
def test_letter_count(completion, correct):
    assert LetterCountVerifier().verify(STRAWBERRY, completion).correct is correct


def test_letter_count_gold_may_be_a_number_word():
    assert LetterCountVerifier().verify({**STRAWBERRY, "answer": "three"}, "Answer: 3").correct


def test_letter_count_gold_is_checked_against_the_word():
    verdict = LetterCountVerifier().verify({**STRAWBERRY, "answer": "2"}, "Answer: 2")
    assert verdict.reason.startswith("bad problem")


LARGER = {"task": "compare", "answer": "9.8", "meta": {"a": "9.11", "b": "9.8"}}


@pytest.mark.parametrize(
    "completion, correct",
    [
        ("Answer: 9.8", True),
        ("The answer is 9.80.", True),
        ("\\boxed{9.8}", True),
        ("Answer: 9.11", False),
        ("Answer: 9.8 is larger than 9.11", False),
        ("Answer: 9.11 or 9.8", False),
        ("Answer: the second", False),
    ],
)
def test_compare_accepts_only_the_larger_number(completion, correct):
    assert CompareVerifier().verify(LARGER, completion).correct is correct


def test_compare_with_a_wrong_gold_is_a_bad_problem():
    assert CompareVerifier().verify({**LARGER, "answer": "9.11"}, "Answer: 9.11").reason.startswith("bad problem")


CHOICE = {"task": "choice", "answer": "B", "meta": {"choices": ["London", "Paris", "Rome", "Oslo"]}}


@pytest.mark.parametrize(
    "completion, correct",
    [
        ("Answer: B", True),
        ("(B)", True),
        ("B) Paris", True),
        ("**B**", True),
        ("The answer is B.", True),
        ("The correct option is (b)", True),
        ("Answer: Paris", True),
        ("Answer: Paris (B)", True),
        ("Answer: B, because Paris is the capital", True),
        ("Answer: B - Paris", True),
        ("Answer: A", False),
        ("Answer: A or B", False),
        ("Answer: (B) and (C)", False),
        ("Answer: B/C", False),
        ("Answer: E", False),
        ("I am not sure", False),
    ],
)
def test_choice_takes_one_letter_and_rejects_hedges(completion, correct):
    assert ChoiceVerifier().verify(CHOICE, completion).correct is correct


def test_choice_gold_must_be_an_option():
    verdict = ChoiceVerifier().verify({**CHOICE, "answer": "F"}, "Answer: F")
    assert verdict.reason.startswith("bad problem")


PUZZLES = [
    (GAME24, G24),
    (COUNTDOWN, COUNT),
    (CipherVerifier(), CIPHER),
    (LetterCountVerifier(), STRAWBERRY),
    (CompareVerifier(), LARGER),
    (ChoiceVerifier(), CHOICE),
]

junk = st.one_of(
    st.text(max_size=2000),
    st.binary(max_size=2000).map(lambda raw: raw.decode("latin-1")),
    st.lists(
        st.sampled_from(["(", ")", "[", "\\boxed{", "}", "Answer:", "=", "24", "8", "/", "×", "÷", "−", "９", "Ｂ", "**", "\n", "0x", "e9"])
    ).map("".join),
)


@settings(max_examples=200, deadline=None)
@given(junk)
def test_any_text_gets_a_verdict_with_a_reason(text):
    for verifier, p in PUZZLES:
        verdict = verifier.verify(p, text)
        assert verdict.reason
        assert verdict.verifier == verifier.name and verdict.version


@pytest.mark.parametrize(
    "text",
    [
        "(" * 1_000_000,
        "Answer: " + "(" * 200 + "4" + ")" * 200,
        "Answer: " + "9" * 100_000,
        "Answer: " + "8*" * 500_000,
        "\\boxed{" * 100_000,
        "\x00\xff\ud7ff" * 300_000,
        None,
    ],
)
def test_huge_or_hostile_completions_get_a_verdict(text):
    for verifier, p in PUZZLES:
        verdict = verifier.verify(p, text)
        assert not verdict.correct
        assert verdict.reason


@pytest.mark.parametrize("bad", [None, {}, {"meta": None}, {"meta": {"numbers": "4 7 8 8"}}, {"meta": {"numbers": [True]}}])
def test_malformed_problems_are_bad_problems(bad):
    for verifier, _ in PUZZLES:
        verdict = verifier.verify(bad, "Answer: 24")
        assert not verdict.correct
        assert verdict.reason.startswith("bad problem"), (verifier.name, verdict.reason)
