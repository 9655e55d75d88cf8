"""stdin/stdout cases of code problems: reading them from the forms datasets store, and
comparing a program's output with the expected one (line by line and token by token, numbers
as numbers). Each case is its own sandbox run (verifiers.code)."""

from __future__ import annotations

import json
import math
import re
from typing import Any, Mapping

_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")


def outputs_match(expected: str, actual: str, rel_tol: float = 1e-6) -> bool:
    """Same lines, same whitespace-separated tokens per line; numeric tokens compare as
    numbers. Trailing spaces and trailing blank lines do not matter."""
    want, got = _lines(expected), _lines(actual)
    return len(want) == len(got) and all(
        _tokens_match(w.split(), g.split(), rel_tol) for w, g in zip(want, got))


def _lines(text: str) -> list[str]:
    lines = [line.rstrip() for line in text.replace("\r\n", "\n").split("\n")]
    while lines and not lines[-1]:
        lines.pop()
    return lines


def _tokens_match(want: list[str], got: list[str], rel_tol: float) -> bool:
    return len(want) == len(got) and all(_token_match(w, g, rel_tol) for w, g in zip(want, got))


def _token_match(want: str, got: str, rel_tol: float) -> bool:
    if want == got:
        return True
    if not (_NUMBER.fullmatch(want) and _NUMBER.fullmatch(got)):
        return False
    if want.lstrip("+-").isdigit() and got.lstrip("+-").isdigit():
        return int(want) == int(got)  # exact, and no float overflow on big integers
    return math.isclose(float(want), float(got), rel_tol=rel_tol, abs_tol=rel_tol * 1e-3)


def io_cases(tests: Any) -> list[Mapping] | None:
    """stdin/stdout cases from `[{"input", "output"}, ...]` or the APPS/TACO form
    `{"inputs": [...], "outputs": [...]}` (also as a JSON string); None for assert tests."""
    if isinstance(tests, str) and tests.lstrip().startswith("{"):
        try:
            tests = json.loads(tests)
        except ValueError:
            return None
    if isinstance(tests, Mapping) and not tests.get("fn_name"):
        inputs, outputs = tests.get("inputs"), tests.get("outputs")
        if isinstance(inputs, list) and isinstance(outputs, list) and len(inputs) == len(outputs):
            return [{"input": _text(i), "output": _text(o)} for i, o in zip(inputs, outputs)]
    if isinstance(tests, (list, tuple)) and tests and all(isinstance(t, Mapping) for t in tests):
        return list(tests)
    return None


def _text(value: Any) -> Any:
    """APPS stores some outputs as lists of lines."""
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return "\n".join(value)
    return value
