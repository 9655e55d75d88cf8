"""Step checkers for procedural column arithmetic: the exact trace format, written and checked.

This module is the one definition of the trace format shared by the task generators (which write
reference traces with `reference_steps`) and the verifier (which checks model traces with
`check_steps`). The format is compact on purpose: a tiny character-level model learns it.

addition, operands [a, b] (non-negative): one line per column, rightmost column first,

    {da}+{db}+{c}={s}        da, db: that column's digits (0 past a number's end)
                             c: carry-in (0 for the first column, else previous s // 10)
                             s = da + db + c

multiplication, operands [a, b] with b one digit 0-9: one line per digit of a, rightmost first,

    {da}*{b}+{c}={p}         c: carry-in (0 first, else previous p // 10);  p = da * b + c

then the final line `Answer: {result}`. 457+68 is "7+8+0=15", "5+6+1=12", "4+0+1=5",
"Answer: 525". Steps are the step lines in order and then the answer as one last step, so
`first_wrong_step` indexes the same list `reference_steps` returns.

Lines that are not step lines (prose, <think> tags) are ignored. A step-shaped line with the
wrong numbers is still a step (and wrong), so a model writing "45+6+1=52" is caught at that
column instead of silently skipped.

The trace around the steps is the same for every task (`format_trace`): the step lines inside
<think> ... </think>, then "Answer: {answer}". The prompts, the task generators and the planted
errors all write and read traces through this module.
"""

from __future__ import annotations

import re
from typing import Any, Mapping, Sequence

from verifiers.base import Verdict, register
from verifiers.extract import final_answer

THINK_OPEN, THINK_CLOSE = "<think>", "</think>"
ANSWER_PREFIX = "Answer: "
"""The final answer line starts with this (verifiers.extract reads it, among other markers)."""

MAX_STEP_LINE = 200
"""Longer lines are never step lines; the cap keeps a 5 MB single-line completion cheap."""

_NUM = r"\s*(\d{1,50})\s*"
_STEP_LINE = {
    "addition": re.compile(rf"{_NUM}\+{_NUM}\+{_NUM}={_NUM}"),
    "multiplication": re.compile(rf"{_NUM}[*×]{_NUM}\+{_NUM}={_NUM}"),
}
_OPERATOR = {"addition": "+", "multiplication": "*"}

STEP_TASKS = tuple(_STEP_LINE)
"""Tasks with a step format, so with a step checker that labels every step of a trace."""

Step = tuple[int, int, int, int]
"""One column step as numbers: (first digit, second operand digit, carry-in, column result)."""


def format_trace(steps: Sequence[str], answer: str) -> str:
    """The assistant text of a solved problem of any task: reasoning steps, then the final answer."""
    body = "\n".join(steps)
    return f"{THINK_OPEN}\n{body}\n{THINK_CLOSE}\n{ANSWER_PREFIX}{answer}"


def reference_steps(task: str, operands: Sequence[Any]) -> list[str]:
    """The reference trace for `operands`: step lines, then the "Answer: N" line.

    Raises ValueError for operands the task does not define (the generator's bug, not a model's).
    """
    a, b = _digits(task, operands)
    columns = _columns(task, a, b)
    lines = [format_step(task, step) for step in columns]
    return lines + [f"{ANSWER_PREFIX}{spelled_result(columns)}"]


def format_step(task: str, step: Step) -> str:
    """One step line: "7+8+0=15" (addition) or "7*6+0=42" (multiplication)."""
    x, y, carry, out = step
    return f"{x}{_OPERATOR[task]}{y}+{carry}={out}"


def column_result(task: str, x: int, y: int, carry: int) -> int:
    """What a column step's right-hand side is: x + y + carry, or x * y + carry."""
    return (x + y if task == "addition" else x * y) + carry


def spelled_result(steps: Sequence[Step]) -> str:
    """The number the steps spell: each column's last digit, then the final carry."""
    digits = "".join(str(step[3] % 10) for step in reversed(steps))
    return (str(steps[-1][3] // 10) + digits).lstrip("0") or "0"


def check_steps(task: str, operands: Sequence[Any], completion: str) -> tuple[int | None, str]:
    """(index of the first wrong step or None, reason). Checks steps and the final answer.

    The answer step is right when it equals what the (all correct) steps produce.
    Raises ValueError for bad operands, like `reference_steps`.
    """
    completion = completion if isinstance(completion, str) else ""
    return _check(task, _columns(task, *_digits(task, operands)), completion, final_answer(completion))


def _check(task: str, expected: list[Step], completion: str, raw: str | None) -> tuple[int | None, str]:
    """check_steps with the correct steps and the extracted final answer already at hand."""
    written = parse_steps(task, completion)
    for index, want in enumerate(expected):
        if index >= len(written):
            return index, f"step {index}: missing, expected {format_step(task, want)}"
        problem = _step_error(task, want, written[index])
        if problem:
            return index, f"step {index}: {problem} in {format_step(task, written[index])}"
    answer_index = len(expected)
    if len(written) > len(expected):
        return answer_index, f"step {answer_index}: extra step line {format_step(task, written[answer_index])}"
    result = spelled_result(expected)
    answer = _whole_number(raw)
    if raw is None:
        return answer_index, f"step {answer_index}: no final answer"
    if answer is None:
        return answer_index, f"step {answer_index}: answer {raw[:50]!r} is not a whole number"
    if answer != result:
        return answer_index, f"step {answer_index}: answer {answer} but the steps give {result}"
    return None, f"all {len(expected)} steps and the answer are right"


def parse_steps(task: str, completion: str) -> list[Step]:
    """The step lines of `completion`, as number tuples, in order."""
    pattern = _STEP_LINE[task]
    text = completion.replace(THINK_OPEN, "\n").replace(THINK_CLOSE, "\n")
    steps = []
    for line in text.splitlines():
        if len(line) <= MAX_STEP_LINE:
            match = pattern.fullmatch(line)
            if match:
                steps.append(tuple(int(n) for n in match.groups()))
    return steps


class StepVerifier:
    """Verifier for one column-arithmetic task: every step and the answer must be right."""

    version = "1"

    def __init__(self, task: str):
        self.name = task
        self.task = task

    def verify(self, problem: Mapping[str, Any], completion: str) -> Verdict:
        try:
            columns = _columns(self.task, *_digits(self.task, problem["meta"]["operands"]))
            expected = spelled_result(columns)
        except (AttributeError, KeyError, TypeError, ValueError) as e:
            return self._verdict(False, f"bad problem: {_describe(e)}")
        gold = str(problem.get("answer", "")).strip().lstrip("0") or "0"
        if gold != expected:
            return self._verdict(False, f"bad problem: gold {problem.get('answer')!r} but the operands give {expected}")
        if not isinstance(completion, str):
            return self._verdict(False, "no final answer: completion is not text")
        extracted = final_answer(completion)
        first_wrong, reason = _check(self.task, columns, completion, extracted)
        if first_wrong is None:
            return self._verdict(True, reason, extracted)
        if _whole_number(extracted) == expected:
            reason = f"lucky: final answer right but {reason}"
        return self._verdict(False, reason, extracted, first_wrong)

    def _verdict(self, correct: bool, reason: str, extracted: str | None = None, step: int | None = None) -> Verdict:
        return Verdict(correct, reason, extracted, step, self.name, self.version)


# ------------------------------------------------------------------------ internals


def _digits(task: str, operands: Sequence[Any]) -> tuple[str, str]:
    """Operands as canonical digit strings (no leading zeros). Digit strings, not ints, so
    operands of any length work without Python's int-to-str digit limit."""
    if task not in _STEP_LINE:
        raise ValueError(f"no step format for task {task!r}")
    if isinstance(operands, (str, bytes)) or not isinstance(operands, Sequence) or len(operands) != 2:
        raise ValueError(f"operands must be a pair, got {operands!r}"[:200])
    digits = []
    for operand in operands:
        if isinstance(operand, bool) or not isinstance(operand, (int, str)):
            raise ValueError(f"operand {operand!r} is not a non-negative integer"[:200])
        try:
            text = str(operand).strip()
        except ValueError:  # an int past Python's int-to-str digit limit
            text = ""
        if not (text.isascii() and text.isdigit()):
            raise ValueError(f"operand {operand!r} is not a non-negative integer"[:200])
        digits.append(text.lstrip("0") or "0")
    if task == "multiplication" and len(digits[1]) != 1:
        raise ValueError(f"multiplication needs a one-digit second operand, got {digits[1]}")
    return digits[0], digits[1]


def _columns(task: str, a: str, b: str) -> list[Step]:
    """The correct step tuples: (da, db, carry, s) or (da, b, carry, p), rightmost first."""
    if task == "addition":
        width = max(len(a), len(b))
        pairs = zip(reversed(a.zfill(width)), reversed(b.zfill(width)))
    else:
        pairs = ((da, b) for da in reversed(a))
    steps = []
    carry = 0
    for da, db in pairs:
        out = column_result(task, int(da), int(db), carry)
        steps.append((int(da), int(db), carry, out))
        carry = out // 10
    return steps


def _step_error(task: str, want: Step, got: Step) -> str:
    if got[:2] != want[:2]:
        return f"wrong digits for this column (expected {want[0]} and {want[1]})"
    if got[2] != want[2]:
        return f"wrong carry-in {got[2]} (expected {want[2]})"
    if got[3] != want[3]:
        return f"wrong arithmetic (expected {want[3]})"
    return ""


def _whole_number(answer: str | None) -> str | None:
    """`answer` as a canonical digit string ("1,050" -> "1050"), None if not a whole number."""
    if answer is None:
        return None
    answer = answer.replace(",", "").replace(" ", "")
    if not (answer.isascii() and answer.isdigit()):
        return None
    return answer.lstrip("0") or "0"


def _describe(error: Exception) -> str:
    if isinstance(error, KeyError):
        return f"missing {error.args[0]!r}"
    return str(error)


register("addition", StepVerifier("addition"))
register("multiplication", StepVerifier("multiplication"))
