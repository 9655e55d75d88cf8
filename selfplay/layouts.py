"""Row layouts: how one row of a user's dataset becomes a `Problem`, gold extracted up front.

    generic  the columns named by `columns.*` (default: each role's own name); the gold is read
             from the answer column as `answer_from` says ("####", "boxed", "field", "auto")
    gsm8k    question; gold = the text after the last "####" of answer; the worked solution in
             meta["solution"]
    math     problem; gold = the answer column when present (MATH-500), else the last \\boxed{}
             of solution (original MATH); level ("Level 5" or 5) as difficulty; type/subject,
             the solution and unique_id in meta
    code     a prompt (question | prompt | text | problem) plus tests: stdin/stdout cases
             (`[{"input", "output"}]` or APPS' input_output) or assert statements (MBPP's
             test_list, HumanEval's test + entry_point), judged by the code verifier

A layout reads each role from the first of its candidate columns the row has; `columns.<role>`
names the one column to read instead. A row that cannot become a problem raises ValueError with
the reason, which the source records as a bad row; the run goes on.
"""

from __future__ import annotations

import json
import re
from typing import Any, Callable, Mapping

from selfplay.records import json_field

LAYOUTS = ("generic", "gsm8k", "math", "code")
ROLES = ("id", "question", "answer", "solution", "tests", "task", "meta", "difficulty", "entry_point", "setup")
CANDIDATES: dict[str, dict[str, tuple[str, ...]]] = {
    "generic": {role: (role,) for role in ROLES},
    "gsm8k": {"id": ("id",), "question": ("question",), "answer": ("answer",)},
    "math": {"id": ("unique_id", "id"), "question": ("problem", "question"), "answer": ("answer",),
             "solution": ("solution",), "difficulty": ("level",)},
    "code": {"id": ("task_id", "problem_id", "id"), "question": ("question", "prompt", "text", "problem"),
             "tests": ("tests", "test_list", "input_output", "test"), "entry_point": ("entry_point",),
             "setup": ("test_setup_code", "test_imports"), "difficulty": ("difficulty",)},
}
"""Per layout, the columns each role is read from (the first one present wins)."""
REQUIRED: dict[str, tuple[tuple[str, ...], ...]] = {
    "generic": (("question",),), "gsm8k": (("question",), ("answer",)),
    "math": (("question",), ("answer", "solution")), "code": (("question",), ("tests",)),
}
"""Per layout, the roles a file must have a column for (one of each group), checked at start."""
APPS_LEVELS = {"introductory": 1, "interview": 2, "competition": 3}
_LEVEL = re.compile(r"^\s*(?:level\s*)?(\d+)\s*$", re.I)


def columns_for(layout: str, role: str, columns: Mapping[str, str]) -> tuple[str, ...]:
    """The columns `role` is read from: the user's mapping, else the layout's candidates."""
    return (columns[role],) if role in columns else CANDIDATES[layout].get(role, ())


def to_fields(layout: str, raw: Mapping[str, Any], columns: Mapping[str, str], task: str | None,
              answer_from: str) -> dict[str, Any]:
    """A row as Problem keyword arguments (source and split excepted); ValueError says why not."""
    def read(role: str) -> tuple[str, Any]:
        names = columns_for(layout, role, columns)
        for name in names:
            if raw.get(name) is not None:
                return name, raw[name]
        return (names[0] if names else role), None

    fields = _BUILDERS[layout](read, raw, task, answer_from)
    meta = fields.setdefault("meta", {})
    _, source_id = read("id")
    if source_id is not None:
        meta["source_id"] = str(source_id)
    return fields


def _question(read) -> str:
    name, question = read("question")
    if not isinstance(question, str) or not question.strip():
        raise ValueError(f"question: column '{name}' is missing or empty")
    return question


def _text(read, role: str) -> tuple[str, str | None]:
    name, value = read(role)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = str(value)
    if value is not None and not isinstance(value, str):
        raise ValueError(f"{role}: column '{name}' must be text, got {type(value).__name__}")
    return name, value if value and value.strip() else None


def _gold(text: str, answer_from: str, name: str, what: str) -> str:
    from verifiers.math import extract_gold

    gold = extract_gold(text, answer_from)
    if gold is None:
        raise ValueError(f"answer: no gold in column '{name}': {what}")
    return gold


def _generic(read, raw, task, answer_from) -> dict[str, Any]:
    name, row_task = read("task")
    task = row_task or task
    if not task:
        raise ValueError(f"no task: the row has no '{name}' column and source.task is not set")
    question = _question(read)
    name, answer = _text(read, "answer")
    if task == "math" and answer is None:
        raise ValueError(f"answer: column '{name}' is missing or empty (a math problem needs its gold)")
    if answer is not None and (task == "math" or answer_from in ("####", "boxed")):
        answer = _gold(answer, answer_from, name, f"answer_from={answer_from!r} finds none")
    fields = {"task": str(task), "question": question, "answer": answer or "",
              "meta": dict(json_field(read("meta")[1], dict, "meta")), "difficulty": _difficulty(read("difficulty")[1])}
    tests = read("tests")[1]
    if tests is not None:
        fields["tests"] = code_tests(tests, None, None) if task == "code" else json_field(tests, list, "tests")
    return fields


def _gsm8k(read, raw, task, answer_from) -> dict[str, Any]:
    question = _question(read)
    name, solution = _text(read, "answer")
    if solution is None:
        raise ValueError(f"answer: column '{name}' is missing or empty")
    gold = _gold(solution, "####", name, "no '####' marker (the gsm8k layout reads the gold after the last ####)")
    return {"task": "math", "question": question, "answer": gold, "meta": {"solution": solution}}


def _math(read, raw, task, answer_from) -> dict[str, Any]:
    question = _question(read)
    answer_col, answer = _text(read, "answer")
    solution_col, solution = _text(read, "solution")
    if answer is not None:
        gold = _gold(answer, "field", answer_col, "empty after its $...$ delimiters")
    elif solution is not None:
        gold = _gold(solution, "boxed", solution_col, f"column '{answer_col}' is empty and the solution has no \\boxed{{}}")
    else:
        raise ValueError(f"answer: neither column '{answer_col}' nor '{solution_col}' has text")
    meta = {k: raw[k] for k in ("type", "subject") if isinstance(raw.get(k), str)}
    if solution is not None:
        meta["solution"] = solution
    return {"task": "math", "question": question, "answer": gold, "meta": meta,
            "difficulty": _difficulty(read("difficulty")[1])}


def _code(read, raw, task, answer_from) -> dict[str, Any]:
    question = _question(read)
    name, tests = read("tests")
    if tests is None or tests == "" or tests == []:
        raise ValueError(f"tests: column '{name}' is missing or empty")
    entry = read("entry_point")[1]
    entry = entry if isinstance(entry, str) and entry.strip() else None
    tests = code_tests(tests, read("setup")[1], entry)
    if isinstance(raw.get("starter_code"), str) and raw["starter_code"].strip():  # APPS
        question += f"\n\nStart from this code:\n```python\n{raw['starter_code'].rstrip()}\n```"
    asserts = [t for t in tests if isinstance(t, str) and t.lstrip().startswith("assert")]
    if asserts and entry is None and asserts[0].strip() not in question:
        # MBPP's own prompt: the tests name the function the program must define.
        question += "\n\nYour code should pass these tests:\n" + "\n".join(a.strip() for a in asserts)
    meta = {"entry_point": entry} if entry else {}
    return {"task": "code", "question": question, "answer": "", "tests": tests, "meta": meta,
            "difficulty": _difficulty(read("difficulty")[1])}


def code_tests(tests: Any, setup: Any, entry_point: str | None) -> list:
    """Tests in the code verifier's list form, checked now: stdin/stdout cases as
    [{"input", "output"}], or assert code as a list of strings (setup code first)."""
    from verifiers.code import AssertSuite, io_cases

    if isinstance(tests, str) and tests.lstrip().startswith(("{", "[")):
        try:
            tests = json.loads(tests)
        except ValueError as e:
            raise ValueError(f"tests: not valid JSON ({e})") from None
    if isinstance(tests, Mapping) and tests.get("fn_name"):
        raise ValueError("tests: call-based tests (fn_name) are not supported; give stdin/stdout cases or asserts")
    cases = io_cases(tests)
    if cases is not None:
        bad = [n for n, c in enumerate(cases) if not isinstance(c.get("input", ""), str) or not isinstance(c.get("output"), str)]
        if bad:
            raise ValueError(f"tests: case {bad[0]} needs string input and output")
        return [{"input": c.get("input", ""), "output": c["output"]} for c in cases]
    code = [tests] if isinstance(tests, str) else list(tests) if isinstance(tests, (list, tuple)) else None
    if not code or not all(isinstance(t, str) for t in code):
        raise ValueError(f"tests: expected stdin/stdout cases or assert statements, got {type(tests).__name__}")
    setup = [setup] if isinstance(setup, str) else list(setup or [])
    code = [s for s in setup if isinstance(s, str) and s.strip()] + code
    try:
        AssertSuite.parse(code, entry_point)
    except (SyntaxError, ValueError, RecursionError) as e:
        raise ValueError(f"tests: {type(e).__name__}: {e}") from None
    return code


def _difficulty(value: Any) -> int | None:
    """An int difficulty from 3, "3", "Level 3" or an APPS level name; None when unknown."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        m = _LEVEL.match(value)
        return int(m.group(1)) if m else APPS_LEVELS.get(value.strip().lower())
    return None


_BUILDERS: dict[str, Callable[..., dict[str, Any]]] = {"generic": _generic, "gsm8k": _gsm8k, "math": _math, "code": _code}
