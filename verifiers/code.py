"""Ground truth for code problems: run the model's program in the sandbox against the tests.

Two problem shapes (problem["tests"]):

* stdin/stdout cases, `[{"input": "...", "output": "..."}, ...]`: each case is its own run;
  output is compared line by line and token by token, numbers as numbers (`1` == `1.0`,
  floats within a small relative tolerance).
* asserts, `["assert f(1) == 2", ...]` or one string of test code (HumanEval's
  `def check(candidate): ...` too, called with problem["meta"]["entry_point"]).

Asserts are judged so the program cannot forge a pass. Every `assert` in the tests is
rewritten into a check whose operands are evaluated lazily in the sandbox and *serialized as
plain data* (exact builtin types only) by a harness that captured its tools before the
candidate ran. The parent decodes those values into fresh objects and decides each comparison
itself, so a returned object whose `__eq__` always says True, an `int` subclass, patched
builtins, `sys.exit(0)` / `os._exit(0)` before the tests, or a printed "PASS" all fail. Reports
travel on a separate pipe, each signed with a per-run key (BLAKE2b); the tests pass only when
every test block reported success, the report stream is gapless and signed, the harness said
"done", and at least one check ran.

Tests never exist as files the program can read: a stdin/stdout case gives the program its
input on stdin and keeps the expected output in the parent; assert tests reach the harness on
its stdin. The program sees only the interpreter and its work dir (verifiers.sandbox).

Known limits: operands are checked, not intermediate values: `len(f(x)) == 3` trusts the
`__len__` of what f returned. The candidate shares the interpreter with the harness, so
code that reads the key out of memory (gc, frames, ctypes) could still forge a report, and
code that inspects its caller's frame can read the assert it is being tested by.
"""

from __future__ import annotations

import ast
import hashlib
import inspect
import json
import math
import re
import secrets
import sys
import textwrap
from dataclasses import dataclass, field
from typing import Any, ClassVar, Mapping

from verifiers.base import Verdict, register
from verifiers.sandbox import SandboxLimits, SandboxResult, run_python
from verifiers.sandbox_view import interpreter_view

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


# ---- stdin/stdout cases -------------------------------------------------------------------

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


# ---- assert tests: plans, the plain-data codec, and the in-sandbox harness -----------------


class _AssertRewriter(ast.NodeTransformer):
    """Turns `assert <test>` into `__sp_check(id, (lambda: operand, ...))` and records the
    test's shape (and/or/not/compare over operands) as a plan both sides can evaluate."""

    def __init__(self) -> None:
        self.plans: list[list] = []

    def visit_Assert(self, node: ast.Assert) -> ast.AST:
        operands: list[ast.expr] = []
        plan = self._plan(node.test, operands)
        self.plans.append(plan)
        call = ast.Call(
            func=ast.Name("__sp_check", ast.Load()),
            args=[ast.Constant(len(self.plans) - 1),
                  ast.Tuple([_thunk(op) for op in operands], ast.Load())],
            keywords=[])
        return ast.copy_location(ast.Expr(call), node)

    def _plan(self, test: ast.expr, operands: list[ast.expr]) -> list:
        if isinstance(test, ast.BoolOp):
            word = "and" if isinstance(test.op, ast.And) else "or"
            return [word, [self._plan(v, operands) for v in test.values]]
        if isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not):
            return ["not", self._plan(test.operand, operands)]
        if isinstance(test, ast.Compare):
            first = _add(operands, test.left)
            rest = [[type(op).__name__, _add(operands, right)]
                    for op, right in zip(test.ops, test.comparators)]
            return ["cmp", first, rest]
        return ["leaf", _add(operands, test)]


def _add(operands: list[ast.expr], node: ast.expr) -> int:
    operands.append(node)
    return len(operands) - 1


def _thunk(node: ast.expr) -> ast.Lambda:
    args = ast.arguments(posonlyargs=[], args=[], vararg=None, kwonlyargs=[], kw_defaults=[],
                         kwarg=None, defaults=[])
    return ast.Lambda(args=args, body=node)


def _decode(e):
    """Plain data back from its tagged form (runs in the parent and in the harness)."""
    tag = e[0]
    if tag == "N":
        return None
    if tag == "b":
        return e[1] == 1
    if tag == "i":
        return int(e[1], 16)
    if tag == "f":
        return float.fromhex(e[1])
    if tag == "c":
        return complex(float.fromhex(e[1]), float.fromhex(e[2]))
    if tag == "s":
        return e[1]
    if tag == "y":
        return bytes.fromhex(e[1])
    if tag == "d":
        return {_decode(k): _decode(v) for k, v in e[1]}
    items = [_decode(x) for x in e[1]]
    return {"l": list, "t": tuple, "S": set, "F": frozenset}[tag](items)


def _holds(plan, operand):
    """Truth of one assert's plan; operand(i) gives the i-th operand's (decoded) value and is
    only called when Python would evaluate it (and/or short-circuit, chained compares)."""
    word = plan[0]
    if word == "leaf":
        return bool(operand(plan[1]))
    if word == "not":
        return not _holds(plan[1], operand)
    if word == "and":
        return all(_holds(p, operand) for p in plan[1])
    if word == "or":
        return any(_holds(p, operand) for p in plan[1])
    left = operand(plan[1])
    for op, index in plan[2]:
        right = operand(index)
        if op in ("Is", "IsNot"):
            same = left is right if (left is None or right is None or type(left) is bool
                                     or type(right) is bool) else (
                type(left) is type(right) and left == right)
            ok = same if op == "Is" else not same
        else:
            try:
                ok = {"Eq": lambda a, b: a == b, "NotEq": lambda a, b: a != b,
                      "Lt": lambda a, b: a < b, "LtE": lambda a, b: a <= b,
                      "Gt": lambda a, b: a > b, "GtE": lambda a, b: a >= b,
                      "In": lambda a, b: a in b, "NotIn": lambda a, b: a not in b}[op](left, right)
            except TypeError:
                ok = False
        if not ok:
            return False
        left = right
    return True


_HARNESS_MAIN = r'''
import builtins as _B, hashlib as _H, json as _J, os as _O, sys as _S

def _harness():
    # Everything the harness needs is bound here, before a line of the candidate runs:
    # later monkeypatching of builtins or modules cannot reach these names.
    type_, hex_, fhex, write, blake = type, hex, float.hex, _O.write, _H.blake2b
    items, BaseExc, AssertErr = dict.items, BaseException, AssertionError
    str_, repr_, int_ = str, repr, int
    pristine = dict(_B.__dict__)
    payload = _J.loads(_S.stdin.buffer.read())
    key, fd = bytes.fromhex(payload["key"]), int_(_O.environ["SANDBOX_CHANNEL_FD"])
    plans, seq = payload["plans"], [0]
    seqs = {list: "l", tuple: "t", set: "S", frozenset: "F"}

    def send(*record):
        body = repr_([seq[0], *record])
        seq[0] += 1
        mac = blake(body.encode(), key=key, digest_size=16).hexdigest()
        write(fd, (mac + " " + body + "\n").encode())

    def encode(v, depth=0):
        t = type_(v)
        if depth > 50:
            raise TypeError("value nested too deep")
        if v is None:
            return ["N"]
        if t is bool:
            return ["b", 1 if v is True else 0]
        if t is int:
            return ["i", hex_(v)]
        if t is float:
            return ["f", fhex(v)]
        if t is complex:
            return ["c", fhex(v.real), fhex(v.imag)]
        if t is str:
            return ["s", v]
        if t is bytes:
            return ["y", bytes.hex(v)]
        if t is dict:
            return ["d", [[encode(k, depth + 1), encode(x, depth + 1)] for k, x in items(v)]]
        tag = seqs.get(t)
        if tag is None:
            raise TypeError("a value of type " + str_(getattr(t, "__qualname__", "?"))[:80]
                            + " is not plain data")
        return [tag, [encode(x, depth + 1) for x in v]]

    def check(index, thunks):
        seen = []
        def operand(i):
            e = encode(thunks[i]())
            seen.append([i, e])
            return _decode(e)
        ok = _holds(plans[index], operand)
        send("check", index, 1 if ok else 0, seen)
        if not ok:
            raise AssertErr("assertion failed")

    def describe(e):
        try:
            return str_(type_(e).__name__)[:80] + ": " + str_(e)[:300]
        except BaseExc:
            return "exception"

    solution = {"__name__": "solution", "__builtins__": _B}
    try:
        exec(compile(payload["candidate"], "solution.py", "exec"), solution)
    except BaseExc as e:
        send("candidate", describe(e))
        return
    tests = {"__builtins__": pristine, "__name__": "tests"}
    for name, value in items(solution):
        if not name.startswith("__") and (name not in pristine or name == payload["entry_point"]):
            tests[name] = value
    tests["__sp_check"] = check
    for i, block in enumerate(payload["blocks"]):
        try:
            exec(compile(block, "<test %d>" % i, "exec"), tests)
            send("block", i, "ok")
        except BaseExc as e:
            send("block", i, describe(e))
    send("done")

_harness()
'''

HARNESS = "\n\n".join(inspect.getsource(f) for f in (_decode, _holds)) + _HARNESS_MAIN


@dataclass(frozen=True)
class AssertSuite:
    """Test code cut into blocks (a failing block does not stop the next), with plans."""

    sources: list[str]
    blocks: list[str]
    plans: list[list]

    @classmethod
    def parse(cls, tests: Any, entry_point: str | None) -> "AssertSuite":
        if isinstance(tests, str):
            statements = ast.parse(tests).body
            pieces = [ast.Module(body=[s], type_ignores=[]) for s in statements]
        elif isinstance(tests, (list, tuple)) and tests and all(isinstance(t, str) for t in tests):
            pieces = [ast.parse(t) for t in tests]
        else:
            raise ValueError("tests must be a string of asserts or a list of strings")
        if entry_point and _defines_uncalled_check(pieces):
            pieces.append(ast.parse(f"check({entry_point})"))  # HumanEval's convention
        sources = [ast.unparse(p) for p in pieces]
        rewriter = _AssertRewriter()
        blocks = [ast.unparse(ast.fix_missing_locations(rewriter.visit(p))) for p in pieces]
        if not rewriter.plans:
            raise ValueError("the tests contain no assert")
        return cls(sources, blocks, rewriter.plans)


def _defines_uncalled_check(pieces: list[ast.Module]) -> bool:
    defined = any(isinstance(s, ast.FunctionDef) and s.name == "check"
                  for p in pieces for s in p.body)
    called = any(isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id == "check"
                 for p in pieces for s in p.body if not isinstance(s, ast.FunctionDef)
                 for n in ast.walk(s))
    return defined and not called


@dataclass
class _Report:
    """The harness's signed report stream, checked and re-judged in the parent."""

    blocks: dict[int, str] = field(default_factory=dict)
    checks: int = 0
    checked: set[int] = field(default_factory=set)
    candidate_error: str | None = None
    done: bool = False
    problem: str | None = None
    failed_check: str | None = None

    @classmethod
    def read(cls, channel: bytes, key: bytes, suite: AssertSuite) -> "_Report":
        report = cls()
        for n, line in enumerate(channel.decode("utf-8", "replace").splitlines()):
            mac, _, body = line.partition(" ")
            good = hashlib.blake2b(body.encode(), key=key, digest_size=16).hexdigest()
            try:
                record = ast.literal_eval(body) if secrets.compare_digest(mac, good) else None
            except (ValueError, SyntaxError, MemoryError, RecursionError):
                record = None
            if not isinstance(record, list) or record[:1] != [n]:
                report.problem = "the report channel was forged or broken"
                return report
            try:
                report._take(record[1:], suite)
            except (KeyError, IndexError, TypeError, ValueError, OverflowError):
                report.problem = "the harness report is malformed"
            if report.problem:
                return report
        return report

    def _take(self, record: list, suite: AssertSuite) -> None:
        kind = record[0]
        if kind == "check":
            index, claimed, seen = record[1], record[2], dict(record[3])
            values = {i: _decode(e) for i, e in seen.items()}
            holds = _holds(suite.plans[index], lambda i: values[i])
            if holds != bool(claimed):
                self.problem = "the harness report disagrees with its own values"
            self.checks += 1
            self.checked.add(index)
            if not holds and self.failed_check is None:
                self.failed_check = _shown(values)
        elif kind == "block":
            self.blocks[record[1]] = record[2]
        elif kind == "candidate":
            self.candidate_error = record[1]
        elif kind == "done":
            self.done = True


def _shown(values: dict[int, Any]) -> str:
    shown = ", ".join(repr(values[i])[:120] for i in sorted(values))
    return f"operands were {shown}" if shown else ""


# ---- the verifier -------------------------------------------------------------------------


@dataclass(frozen=True)
class CodeVerifier:
    """Runs extracted programs in the sandbox; one `Verdict` per completion."""

    limits: SandboxLimits = SandboxLimits(wall_seconds=10.0, cpu_seconds=10.0)
    isolate: bool | None = None
    """None: bubblewrap where it works; False: rlimits only (see verifiers.sandbox)."""
    packages: tuple[str, ...] = ()
    """Installed packages (top-level names, dependencies included) programs may import
    besides the standard library, e.g. ("numpy",); nothing else of the host is visible."""
    name: ClassVar[str] = "code"
    version: ClassVar[str] = "2"  # 2: programs see only the standard library and `packages`

    def __post_init__(self) -> None:
        if self.packages:
            interpreter_view(sys.executable, tuple(self.packages))  # a typo fails here, not per run

    def verify(self, problem: Mapping[str, Any], completion: str) -> Verdict:
        tests = problem.get("tests") if isinstance(problem, Mapping) else None
        if not tests:
            return self._verdict(False, "bad problem: no tests")
        code = extract_code(completion) if isinstance(completion, str) else None
        if code is None:
            return self._verdict(False, "no Python code found in the completion")
        try:
            cases = io_cases(tests)
            if cases is not None:
                return self._io(cases, code)
            meta = problem.get("meta") or {}
            entry = meta.get("entry_point") if isinstance(meta, Mapping) else None
            return self._asserts(tests, code, entry if isinstance(entry, str) else None)
        except OSError as e:  # the machine, not the model: say so instead of raising
            return self._verdict(False, f"sandbox error: {e}", code)

    def _verdict(self, correct: bool, reason: str, code: str | None = None) -> Verdict:
        return Verdict(correct, reason, extracted=code, verifier=self.name, version=self.version)

    def _io(self, cases: list[Mapping], code: str) -> Verdict:
        for n, case in enumerate(cases):
            given, want = case.get("input", ""), case.get("output")
            if not isinstance(given, str) or not isinstance(want, str):
                return self._verdict(False, f"bad problem: case {n} needs string input/output")
            run = run_python(code, stdin=given, limits=self.limits, isolate=self.isolate,
                             packages=self.packages)
            if run.status != "ok":
                return self._verdict(False, f"case {n}: {_describe_run(run)}", code)
            if not outputs_match(want, run.stdout):
                got = run.stdout[:200]
                return self._verdict(False, f"case {n}: wrong output {got!r}, expected {want[:200]!r}",
                                     code)
        return self._verdict(True, f"passed {len(cases)}/{len(cases)} cases", code)

    def _asserts(self, tests: Any, code: str, entry_point: str | None) -> Verdict:
        try:
            suite = AssertSuite.parse(tests, entry_point)
        except (SyntaxError, ValueError, RecursionError) as e:
            return self._verdict(False, f"bad problem: {e}")
        key = secrets.token_bytes(32)
        payload = json.dumps({"key": key.hex(), "candidate": code, "blocks": suite.blocks,
                              "plans": suite.plans, "entry_point": entry_point or ""})
        run = run_python(HARNESS, stdin=payload, limits=self.limits, isolate=self.isolate,
                         channel=True, packages=self.packages)
        report = _Report.read(run.channel, key, suite)
        return self._judge_asserts(suite, report, run, code)

    def _judge_asserts(self, suite: AssertSuite, report: _Report, run: SandboxResult,
                       code: str) -> Verdict:
        total = len(suite.blocks)
        passed = sum(1 for status in report.blocks.values() if status == "ok")
        if report.problem:
            return self._verdict(False, report.problem, code)
        if report.candidate_error:
            return self._verdict(False, f"the program raised {report.candidate_error}", code)
        for i in range(total):
            status = report.blocks.get(i)
            if status is None:
                why = _describe_run(run) if run.status != "ok" else "the program exited early"
                return self._verdict(False, f"test {i} did not report ({why}); "
                                            f"{passed}/{total} passed", code)
            if status != "ok":
                detail = report.failed_check if status.startswith("AssertionError") else None
                return self._verdict(False, f"test {i} failed: {suite.sources[i][:200]!r}: "
                                            f"{detail or status}; {passed}/{total} passed", code)
        if not report.done:
            return self._verdict(False, f"the run ended before the harness finished "
                                        f"({_describe_run(run)})", code)
        if report.checks == 0:
            return self._verdict(False, "no assertion ran", code)
        silent = sorted(set(range(len(suite.plans))) - report.checked)
        if silent:
            # An assert that never reported was skipped (or its check was patched away).
            return self._verdict(False, f"assert {silent[0]} never ran", code)
        return self._verdict(True, f"passed {total}/{total} tests ({report.checks} checks)", code)


def _describe_run(run: SandboxResult) -> str:
    if run.status == "timeout":
        return f"timed out after {run.wall_seconds:.1f}s"
    if run.status == "limit":
        return f"hit the {run.limit} limit"
    if run.status == "killed":
        return f"killed by signal {run.signal}"
    last = run.stderr.strip().splitlines()[-1:] or [""]
    return f"exit code {run.exit_code}: {last[0][:200]}"


register("code", CodeVerifier())
