"""Assert tests of code problems, judged so the program cannot forge a pass.

Every `assert` in the tests is rewritten into a check whose operands are evaluated lazily in
the sandbox and *serialized as plain data* (exact builtin types only) by a harness that
captured its tools before the candidate ran. The parent decodes those values into fresh
objects and decides each comparison itself, so a returned object whose `__eq__` always says
True, an `int` subclass, patched builtins, `sys.exit(0)` / `os._exit(0)` before the tests, or a
printed "PASS" all fail. Reports travel on a separate pipe, each signed with a per-run key
(BLAKE2b); the tests pass only when every test block reported success, the report stream is
gapless and signed, the harness said "done", and at least one check ran (verifiers.code
decides that from the `AssertReport`).

The tests reach the harness on its stdin, never as files the program can read.

Known limits: operands are checked, not intermediate values: `len(f(x)) == 3` trusts the
`__len__` of what f returned. The candidate shares the interpreter with the harness, so
code that reads the key out of memory (gc, frames, ctypes) could still forge a report, and
code that inspects its caller's frame can read the assert it is being tested by.
"""

from __future__ import annotations

import ast
import hashlib
import inspect
import secrets
from dataclasses import dataclass, field
from typing import Any

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
class AssertReport:
    """The harness's signed report stream, checked and re-judged in the parent."""

    blocks: dict[int, str] = field(default_factory=dict)
    checks: int = 0
    checked: set[int] = field(default_factory=set)
    candidate_error: str | None = None
    done: bool = False
    problem: str | None = None
    failed_check: str | None = None

    @classmethod
    def read(cls, channel: bytes, key: bytes, suite: AssertSuite) -> "AssertReport":
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
