"""The code verifier on real programs: extraction, output comparison, assert tests, and the
reward hacks a trained model finds (early exit, always-equal objects, forged reports)."""

from __future__ import annotations

import pytest
from hypothesis import given, strategies as st

from verifiers import verify
from verifiers.code import CodeVerifier, extract_code, outputs_match
from verifiers.pool import VerifierPool
from verifiers.sandbox import SandboxLimits, bwrap_works

ADD = {"task": "code", "tests": ["assert add(1, 2) == 3", "assert add(-1, 1) == 0",
                                 "assert add(2.5, 0.5) == 3.0"]}
SUM_IO = {"task": "code", "tests": [{"input": "1 2\n", "output": "3\n"},
                                    {"input": "10 -4", "output": "6"}]}
FAST = CodeVerifier(limits=SandboxLimits(wall_seconds=2.0, cpu_seconds=1.0))


def fenced(code: str) -> str:
    return f"Here is my solution.\n\n```python\n{code}\n```\nIt runs in O(1)."


# ---- extraction ---------------------------------------------------------------------------

def test_extract_takes_the_last_python_block():
    text = "```python\nx = 1\n```\nbetter:\n```py\nx = 2\n```\n```bash\nls\n```"
    assert extract_code(text) == "x = 2\n"


def test_extract_falls_back_to_an_untagged_block_then_to_plain_code():
    assert extract_code("try:\n```\nprint(3)\n```") == "print(3)\n"
    assert extract_code("def f():\n    return 1\n") == "def f():\n    return 1\n"


def test_extract_keeps_an_unclosed_final_block():
    assert extract_code("```python\nprint(1)\n") == "print(1)\n"


def test_extract_finds_nothing_in_prose():
    assert extract_code("The answer is to loop over the list.") is None
    assert extract_code("") is None


# ---- output comparison --------------------------------------------------------------------

def test_outputs_match_numbers_by_value():
    assert outputs_match("1 2.5\n", "1.0 2.5000001")
    assert not outputs_match("1 2.5", "1 2.6")
    assert outputs_match("123456789012345678901234567890", "123456789012345678901234567890")
    assert not outputs_match("123456789012345678901234567890", "123456789012345678901234567891")


def test_outputs_match_ignores_trailing_space_but_not_lines_or_words():
    assert outputs_match("a b\nc\n", "a  b   \nc\n\n\n")
    assert not outputs_match("a b\nc", "a b c")
    assert not outputs_match("YES", "yes")
    assert not outputs_match("1", "")


@given(st.lists(st.integers(-10**30, 10**30), max_size=6))
def test_outputs_match_integers_written_as_floats(numbers):
    assert outputs_match(" ".join(map(str, numbers)), " ".join(f"{n}.0" for n in numbers))


# ---- stdin/stdout problems ----------------------------------------------------------------

def test_io_correct_program_passes():
    verdict = verify(SUM_IO, fenced("a, b = map(int, input().split())\nprint(a + b)"))
    assert verdict.correct, verdict.reason
    assert (verdict.verifier, verdict.version) == ("code", CodeVerifier.version)
    assert "print(a + b)" in verdict.extracted


def test_io_wrong_output_names_the_case():
    verdict = verify(SUM_IO, fenced("a, b = map(int, input().split())\nprint(a * b if a == 10 else a + b)"))
    assert not verdict.correct
    assert verdict.reason.startswith("case 1: wrong output")


def test_io_crash_and_timeout_fail_with_reason():
    crash = FAST.verify(SUM_IO, fenced("raise SystemExit('nope')"))
    assert not crash.correct and "exit code 1" in crash.reason
    slow = FAST.verify(SUM_IO, fenced("while True:\n    pass"))
    assert not slow.correct and ("timed out" in slow.reason or "cpu limit" in slow.reason)


def test_apps_style_inputs_outputs_are_stdin_cases():
    problem = {"task": "code", "tests": '{"inputs": ["2\\n", "5\\n"], "outputs": [["4"], "25\\n"]}'}
    assert verify(problem, fenced("n = int(input())\nprint(n * n)")).correct
    assert not verify(problem, fenced("n = int(input())\nprint(n + n)")).correct


def test_printing_the_right_answer_then_crashing_fails():
    verdict = verify(SUM_IO, fenced("print(3)\nraise RuntimeError"))
    assert not verdict.correct


# ---- assert problems ----------------------------------------------------------------------

def test_asserts_correct_function_passes():
    verdict = verify(ADD, fenced("def add(a, b):\n    return a + b"))
    assert verdict.correct, verdict.reason


def test_asserts_wrong_function_shows_what_it_returned():
    verdict = verify(ADD, fenced("def add(a, b):\n    return a - b"))
    assert not verdict.correct
    assert "test 0 failed" in verdict.reason and "-1" in verdict.reason


def test_asserts_as_one_string_with_setup_and_compound_checks():
    problem = {"task": "code", "tests": (
        "import math\nxs = [3, 1, 2]\nassert sort_copy(xs) == [1, 2, 3] and xs == [3, 1, 2]\n"
        "assert not sort_copy([])\nassert math.isclose(sum(sort_copy([0.1, 0.2])), 0.3)\n"
        "assert 1 < len(sort_copy(xs)) <= 3\nassert sort_copy(xs) is not None\n")}
    good = verify(problem, fenced("def sort_copy(xs):\n    return sorted(xs)"))
    assert good.correct, good.reason
    in_place = verify(problem, fenced("def sort_copy(xs):\n    xs.sort()\n    return xs"))
    assert not in_place.correct


def test_humaneval_check_function_is_called_with_the_entry_point():
    problem = {"task": "code", "meta": {"entry_point": "total"},
               "tests": "def check(candidate):\n    assert candidate([1, 2, 3]) == 6\n"
                        "    assert candidate([]) == 0\n"}
    assert verify(problem, fenced("def total(xs):\n    return sum(xs)")).correct
    assert not verify(problem, fenced("def total(xs):\n    return 6")).correct


def test_missing_function_fails():
    verdict = verify(ADD, fenced("def plus(a, b):\n    return a + b"))
    assert not verdict.correct and "NameError" in verdict.reason


HACKS = {
    "exit before the tests": "import sys\nsys.exit(0)",
    "os._exit before the tests": "import os\nos._exit(0)",
    "exit inside the function": "def add(a, b):\n    import os\n    os._exit(0)",
    "always-equal object": "class A:\n    def __eq__(self, other):\n        return True\n"
                           "def add(a, b):\n    return A()",
    "int subclass equal to all": "class I(int):\n    def __eq__(self, o):\n        return True\n"
                                 "    __hash__ = int.__hash__\ndef add(a, b):\n    return I(0)",
    "printed pass marker": "print('PASSED ' * 3)\ndef add(a, b):\n    return None",
    "patched builtins": "import builtins\nbuiltins.AssertionError = type('X', (Exception,), {})\n"
                        "builtins.isinstance = lambda *a: True\ndef add(a, b):\n    return 0",
    "patched check hook": "import sys\ndef add(a, b):\n    f = sys._getframe(1)\n"
                          "    while f and '__sp_check' not in f.f_globals:\n        f = f.f_back\n"
                          "    f.f_globals['__sp_check'] = lambda *a: None\n    return 3",
    "forged report lines": "import os\nfd = int(os.environ['SANDBOX_CHANNEL_FD'])\n"
                           "for i in range(8):\n    os.write(fd, b'0' * 32 + b' [%d, \"done\"]\\n' % i)\n"
                           "os._exit(0)",
    "raise BaseException": "def add(a, b):\n    raise KeyboardInterrupt",
}


@pytest.mark.parametrize("hack", sorted(HACKS))
def test_reward_hacks_do_not_pass(hack):
    verdict = FAST.verify(ADD, fenced(HACKS[hack]))
    assert not verdict.correct, verdict.reason


@pytest.mark.skipif(not bwrap_works(), reason="compares with the bwrap mode; bwrap missing here")
def test_hacks_fail_in_the_rlimit_fallback_too():
    fallback = CodeVerifier(limits=FAST.limits, isolate=False)
    assert fallback.verify(ADD, fenced("def add(a, b):\n    return a + b")).correct
    for hack in ("always-equal object", "os._exit before the tests", "forged report lines"):
        assert not fallback.verify(ADD, fenced(HACKS[hack])).correct, hack


def test_a_slow_function_times_out():
    verdict = FAST.verify(ADD, fenced("def add(a, b):\n    import time\n    time.sleep(60)"))
    assert not verdict.correct and "timed out" in verdict.reason


# ---- time shared by the cases of one completion -------------------------------------------

SLOW_ECHO = fenced("import time\ntime.sleep(0.4)\nprint(input())")
"""Correct, and each case sleeps 0.4 s: eight cases need more than 3 s whatever the machine."""
EIGHT_CASES = {"task": "code", "tests": [{"input": f"{i}\n", "output": f"{i}\n"} for i in range(8)]}


def test_budget_seconds_bounds_all_cases_together():
    verdict = CodeVerifier(limits=FAST.limits, budget_seconds=1.0).verify(EIGHT_CASES, SLOW_ECHO)
    assert not verdict.correct
    assert verdict.reason.startswith("case ") and "out of time" in verdict.reason


def test_under_a_pool_the_cases_end_before_its_timeout_and_the_verdict_names_the_case():
    # Each case alone is far inside the verifier's own limit (10 s), all eight are not inside
    # the pool's 2 s: the verdict must come from the code verifier, not from the pool's kill.
    with VerifierPool(workers=1, timeout=2.0) as pool:
        # The worker's first sandbox run checks that bwrap works (about a second): not timed here.
        warm = pool.submit({**EIGHT_CASES, "tests": EIGHT_CASES["tests"][:1]},
                           fenced("print(input())"), timeout=120).result()
        verdict = pool.submit(EIGHT_CASES, SLOW_ECHO).result()
    assert warm.correct, warm.reason
    assert (verdict.correct, verdict.verifier) == (False, "code"), verdict.reason
    assert verdict.reason.startswith("case ") and "out of time" in verdict.reason


# ---- malformed input ----------------------------------------------------------------------

@pytest.mark.parametrize("problem", [
    {"task": "code"},
    {"task": "code", "tests": []},
    {"task": "code", "tests": "x = 1"},
    {"task": "code", "tests": "assert (("},
    {"task": "code", "tests": [{"input": 3, "output": "3"}]},
    {"task": "code", "tests": [1, 2]},
])
def test_malformed_problems_give_a_bad_problem_verdict(problem):
    verdict = verify(problem, fenced("print(3)"))
    assert not verdict.correct and verdict.reason.startswith("bad problem")


def test_completion_without_code_is_rejected_without_running():
    verdict = verify(ADD, "I think you should add the numbers.")
    assert not verdict.correct and verdict.extracted is None
