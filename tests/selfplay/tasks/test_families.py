"""Task families: every reference solution verifies, generation is deterministic, splits are
disjoint, and difficulty changes the problems. (One file for the package: tests/verifiers already
has a test_puzzles.py, and pytest's default import mode rejects duplicate test basenames.)"""

import random
import re

import pytest

import verifiers
from selfplay.prompts import format_trace
from selfplay.records import Problem
from selfplay.tasks import FAMILIES, family, make_problems, problem_stream, reference_solution
from selfplay.tasks.puzzles import count_solutions, find_solution
from selfplay.tasks.words import encode_pairs

CASES = [(name, d) for name, fam in FAMILIES.items() for d in range(fam.min_difficulty, min(fam.max_difficulty, 4) + 1)]


@pytest.mark.parametrize("name, difficulty", CASES)
def test_reference_solutions_pass_their_verifier(name, difficulty):
    problems = make_problems(name, 12, seed=3, difficulty=difficulty, split="heldout", allow_fewer=True)
    assert problems
    for problem in problems:
        reference = reference_solution(problem)
        trace = format_trace(list(reference.steps), reference.answer)
        verdict = verifiers.verify(problem.to_dict(), trace)
        assert verdict.correct, (problem.question, trace, verdict.reason)
        assert problem.task == FAMILIES[name].task and problem.source == f"procedural:{name}"


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_questions_are_short_ascii_and_rows_round_trip(name):
    fam = FAMILIES[name]
    for problem in make_problems(name, 10, seed=0, difficulty=fam.max_difficulty if fam.max_difficulty < 10 else 5):
        assert problem.question.isascii() and len(problem.question) <= 80, problem.question
        assert Problem.from_row(problem.to_row()) == problem


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_same_seed_same_problems_other_seed_other_problems(name):
    first = make_problems(name, 15, seed=7, difficulty=2)
    assert [p.id for p in first] == [p.id for p in make_problems(name, 15, seed=7, difficulty=2)]
    assert [p.id for p in first] != [p.id for p in make_problems(name, 15, seed=8, difficulty=2)]
    assert len({p.id for p in first}) == 15


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_heldout_never_overlaps_train_whatever_the_seed(name):
    train = {p.id for seed in (0, 1) for p in make_problems(name, 150, seed=seed, difficulty=2)}
    heldout = make_problems(name, 30, seed=0, difficulty=2, split="heldout")
    assert not train & {p.id for p in heldout}
    assert {p.split for p in heldout} == {"heldout"}


def test_small_spaces_say_so_unless_fewer_are_allowed():
    with pytest.raises(ValueError, match="only .* distinct addition problems"):
        make_problems("addition", 50, seed=0, difficulty=1, split="heldout")
    few = make_problems("addition", 50, seed=0, difficulty=1, split="heldout", allow_fewer=True)
    assert 3 <= len(few) < 50


def _operand_digits(problem):
    return max(len(str(x)) for x in problem.meta["operands"])


def test_difficulty_sets_the_size_of_each_family():
    for name in ("addition", "multiplication"):
        for d in (1, 3, 6):
            assert {_operand_digits(p) for p in make_problems(name, 20, 0, d, allow_fewer=True)} == {d}
            assert all(len(str(p.meta["operands"][0])) == d for p in make_problems("multiplication", 5, 0, d))
    assert {len(p.meta["numbers"]) for p in make_problems("countdown", 10, 0, 4)} == {5}
    assert {len(p.answer.split()) for p in make_problems("cipher", 10, 0, 3)} == {3}
    short = [len(p.meta["word"]) for p in make_problems("letter_count", 10, 0, 1)]
    long = [len(p.meta["word"]) for p in make_problems("letter_count", 10, 0, 3)]
    assert max(short) < min(long)
    easy = [count_solutions(tuple(p.meta["numbers"]), 24) for p in make_problems("game24", 10, 0, 1)]
    hard = [count_solutions(tuple(p.meta["numbers"]), 24) for p in make_problems("game24", 10, 0, 3)]
    assert min(easy) > max(hard) > 0


def test_bad_family_and_difficulty_are_named():
    with pytest.raises(ValueError, match="unknown task family 'sudoku'"):
        make_problems("sudoku", 1, 0, 1)
    with pytest.raises(ValueError, match="difficulty 9 out of range"):
        make_problems("game24", 1, 0, 9)
    with pytest.raises(ValueError, match="n must be"):
        make_problems("addition", -1, 0, 1)
    with pytest.raises(ValueError, match="no task family"):
        reference_solution({"task": "math", "meta": {}})
    with pytest.raises(ValueError, match="malformed meta"):
        reference_solution({"task": "game24", "meta": {}})


def test_stream_repeats_in_a_tiny_space_but_stays_in_its_split():
    problems = [p for p, _ in zip(problem_stream("multiplication", 0, 1, "heldout"), range(60))]
    assert len({p.id for p in problems}) < 60
    assert all(p.split == "heldout" for p in problems)


def test_game24_search_uses_fractions_when_it_must():
    steps, expression = find_solution([3, 3, 8, 8], 24, use_all=True)
    assert verifiers.verify({"task": "game24", "answer": "24", "meta": {"numbers": [3, 3, 8, 8]}},
                            f"Answer: {expression}").correct
    assert any(r.denominator != 1 for *_, r in steps)
    assert find_solution([1, 1, 1, 1], 24, use_all=True) is None


def test_cipher_reproduces_the_o1_example():
    meta = {"ciphertext": "oyfjdnisdr rtqwainr acxz mynzbhhx"}
    assert reference_solution({"task": "cipher", "meta": meta}).answer == "think step by step"
    ciphertext = encode_pairs("think step by step", random.Random(0))
    assert re.fullmatch(r"[a-z]{10} [a-z]{8} [a-z]{4} [a-z]{8}", ciphertext)
    assert reference_solution({"task": "cipher", "meta": {"ciphertext": ciphertext}}).answer == "think step by step"


@pytest.mark.parametrize("ciphertext", ["oz", "oyf", "o1"])
def test_a_ciphertext_that_does_not_decode_has_no_reference_solution(ciphertext):
    # An odd pair sum once decoded to the letter below the average, and an odd-length word
    # crashed: the reference solution now decodes with the verifier's own decoder.
    with pytest.raises(ValueError, match="no whole average|not an even run"):
        reference_solution({"task": "cipher", "meta": {"ciphertext": ciphertext}})


def test_family_lookup_lists_the_known_ones():
    assert family("addition").task == "addition"
    assert set(FAMILIES) == {"addition", "multiplication", "game24", "countdown", "cipher", "letter_count"}
