"""Ground truth for code problems: run the model's program in the sandbox against the tests.

Two problem shapes (problem["tests"]):

* stdin/stdout cases, `[{"input": "...", "output": "..."}, ...]`: each case is its own run;
  output is compared line by line and token by token, numbers as numbers (`1` == `1.0`,
  floats within a small relative tolerance). See verifiers.code_stdio.
* asserts, `["assert f(1) == 2", ...]` or one string of test code (HumanEval's
  `def check(candidate): ...` too, called with problem["meta"]["entry_point"]), judged so the
  program cannot forge a pass: see verifiers.code_asserts for how, and its known limits.

Tests never exist as files the program can read: a stdin/stdout case gives the program its
input on stdin and keeps the expected output in the parent; assert tests reach the harness on
its stdin. The program sees only the interpreter and its work dir (verifiers.sandbox).
"""

from __future__ import annotations

import ast
import json
import re
import secrets
import sys
import textwrap
import time
from dataclasses import dataclass
from typing import Any, ClassVar, Mapping

from verifiers.base import Verdict, register, time_left
from verifiers.code_asserts import HARNESS, AssertReport, AssertSuite
from verifiers.code_stdio import io_cases, outputs_match
from verifiers.sandbox import SandboxLimits, SandboxResult, run_python
from verifiers.sandbox_view import interpreter_view

__all__ = ["HARNESS", "AssertSuite", "CodeVerifier", "extract_code", "io_cases", "outputs_match"]

_PY_LANGS = {"python", "py", "python3", "py3", "sage"}
_FENCE = re.compile(r"^[ \t]*```[ \t]*([\w+.-]*)[^\n]*\n(.*?)(?:^[ \t]*```[ \t]*$|\Z)", re.M | re.S)


def extract_code(completion: str) -> str | None:
    """The program in a model completion: the last ```python block, else the last untagged
    ``` block, else the whole text when it parses as Python."""
    blocks = [(lang.lower(), body) for lang, body in _FENCE.findall(completion)]
    for wanted in (_PY_LANGS, {""}):
        tagged = [body for lang, body in blocks if lang in wanted and body.strip()]
        if tagged:
            return textwrap.dedent(tagged[-1])
    try:
        ast.parse(completion)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None
    return completion if completion.strip() else None


# ---- the verifier -------------------------------------------------------------------------

RESERVE_SECONDS = 0.5
"""The runs of one completion end this long before the caller's deadline (verifiers.base):
time for the sandbox to clean up and for the verdict to travel back before the kill."""


@dataclass(frozen=True)
class CodeVerifier:
    """Runs extracted programs in the sandbox; one `Verdict` per completion.

    Time, and which number rules: `limits.wall_seconds` bounds each run, `budget_seconds` all
    runs of one completion together, and inside a VerifierPool its timeout (selfplay's
    `verifier.timeout`) bounds both: the runs end RESERVE_SECONDS before it. A program that is
    still running then is stopped and the verdict names the case that ran out of time; the pool
    never has to kill the worker (and, without bwrap, leave the program running).
    """

    limits: SandboxLimits = SandboxLimits(wall_seconds=10.0, cpu_seconds=10.0)
    """Limits of one run: one stdin/stdout case, or the one run of all assert tests."""
    budget_seconds: float | None = None
    """Wall seconds all runs of one completion share (None: no budget beyond the pool's)."""
    isolate: bool | None = None
    """None: bubblewrap where it works; False: rlimits only (see verifiers.sandbox)."""
    packages: tuple[str, ...] = ()
    """Installed packages (top-level names, dependencies included) programs may import
    besides the standard library, e.g. ("numpy",); nothing else of the host is visible."""
    name: ClassVar[str] = "code"
    version: ClassVar[str] = "3"  # 2: programs see only the standard library and `packages`;
    # 3: all runs of one completion share the pool's timeout (and `budget_seconds`)

    def __post_init__(self) -> None:
        if self.budget_seconds is not None and self.budget_seconds <= 0:
            raise ValueError("CodeVerifier.budget_seconds must be positive")
        if self.packages:
            interpreter_view(sys.executable, tuple(self.packages))  # a typo fails here, not per run

    def verify(self, problem: Mapping[str, Any], completion: str) -> Verdict:
        until = self._deadline()
        tests = problem.get("tests") if isinstance(problem, Mapping) else None
        if not tests:
            return self._verdict(False, "bad problem: no tests")
        code = extract_code(completion) if isinstance(completion, str) else None
        if code is None:
            return self._verdict(False, "no Python code found in the completion")
        try:
            cases = io_cases(tests)
            if cases is not None:
                return self._io(cases, code, until)
            meta = problem.get("meta") or {}
            entry = meta.get("entry_point") if isinstance(meta, Mapping) else None
            return self._asserts(tests, code, entry if isinstance(entry, str) else None, until)
        except OSError as e:  # the machine, not the model: say so instead of raising
            return self._verdict(False, f"sandbox error: {e}", code)

    def _deadline(self) -> float | None:
        """The time.monotonic() by which every run of this completion must have ended."""
        left = time_left()
        shares = [s for s in (self.budget_seconds, None if left is None else left - RESERVE_SECONDS)
                  if s is not None]
        return time.monotonic() + min(shares) if shares else None

    def _verdict(self, correct: bool, reason: str, code: str | None = None) -> Verdict:
        return Verdict(correct, reason, extracted=code, verifier=self.name, version=self.version)

    def _io(self, cases: list[Mapping], code: str, until: float | None) -> Verdict:
        for n, case in enumerate(cases):
            given, want = case.get("input", ""), case.get("output")
            if not isinstance(given, str) or not isinstance(want, str):
                return self._verdict(False, f"bad problem: case {n} needs string input/output")
            run = run_python(code, stdin=given, limits=self.limits, isolate=self.isolate,
                             packages=self.packages, deadline=until)
            if run.status != "ok":
                return self._verdict(False, f"case {n}: {_describe_run(run, until)}", code)
            if not outputs_match(want, run.stdout):
                got = run.stdout[:200]
                return self._verdict(False, f"case {n}: wrong output {got!r}, expected {want[:200]!r}",
                                     code)
        return self._verdict(True, f"passed {len(cases)}/{len(cases)} cases", code)

    def _asserts(self, tests: Any, code: str, entry_point: str | None,
                 until: float | None) -> Verdict:
        try:
            suite = AssertSuite.parse(tests, entry_point)
        except (SyntaxError, ValueError, RecursionError) as e:
            return self._verdict(False, f"bad problem: {e}")
        key = secrets.token_bytes(32)
        payload = json.dumps({"key": key.hex(), "candidate": code, "blocks": suite.blocks,
                              "plans": suite.plans, "entry_point": entry_point or ""})
        run = run_python(HARNESS, stdin=payload, limits=self.limits, isolate=self.isolate,
                         channel=True, packages=self.packages, deadline=until)
        report = AssertReport.read(run.channel, key, suite)
        return self._judge_asserts(suite, report, run, code, _describe_run(run, until))

    def _judge_asserts(self, suite: AssertSuite, report: AssertReport, run: SandboxResult,
                       code: str, ended: str) -> Verdict:
        total = len(suite.blocks)
        passed = sum(1 for status in report.blocks.values() if status == "ok")
        if report.problem:
            return self._verdict(False, report.problem, code)
        if report.candidate_error:
            return self._verdict(False, f"the program raised {report.candidate_error}", code)
        for i in range(total):
            status = report.blocks.get(i)
            if status is None:
                why = ended if run.status != "ok" else "the program exited early"
                return self._verdict(False, f"test {i} did not report ({why}); "
                                            f"{passed}/{total} passed", code)
            if status != "ok":
                detail = report.failed_check if status.startswith("AssertionError") else None
                return self._verdict(False, f"test {i} failed: {suite.sources[i][:200]!r}: "
                                            f"{detail or status}; {passed}/{total} passed", code)
        if not report.done:
            return self._verdict(False, f"the run ended before the harness finished "
                                        f"({ended})", code)
        if report.checks == 0:
            return self._verdict(False, "no assertion ran", code)
        silent = sorted(set(range(len(suite.plans))) - report.checked)
        if silent:
            # An assert that never reported was skipped (or its check was patched away).
            return self._verdict(False, f"assert {silent[0]} never ran", code)
        return self._verdict(True, f"passed {total}/{total} tests ({report.checks} checks)", code)


def _describe_run(run: SandboxResult, until: float | None) -> str:
    """How the run ended; `until`: when the runs of its completion had to end (see CodeVerifier)."""
    if run.status == "timeout" and until is not None and time.monotonic() >= until:
        return (f"out of time after {run.wall_seconds:.1f}s (the runs of one completion share "
                f"the pool's timeout or budget_seconds)")
    if run.status == "timeout":
        return f"timed out after {run.wall_seconds:.1f}s"
    if run.status == "limit":
        return f"hit the {run.limit} limit"
    if run.status == "killed":
        return f"killed by signal {run.signal}"
    last = run.stderr.strip().splitlines()[-1:] or [""]
    return f"exit code {run.exit_code}: {last[0][:200]}"


register("code", CodeVerifier())
