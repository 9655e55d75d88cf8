"""Benchmark the verifiers: accuracy, false positives and throughput on labelled data.

    python bench/verifiers.py [--quick] [--json PATH]

Math section: our math verifier and `math-verify` (PyPI math_verify, pinned 0.9.0 in the bench
extra) side by side on both labelled sets: tests/verifiers/data/math_pairs.jsonl (bare answer
pairs, by category) and tests/verifiers/data/math_outputs.jsonl (whole model outputs, by
class). Everything runs in this one process pinned to one core, so checks per second are per
core (ours with sympy inline, as a pool worker runs it; plus ours with its sympy worker
subprocess). False-positive rate is "said equal" among pairs labelled not equal. The hostile
section times the inputs the test suite only checks for a verdict. Each section is a function
returning rows, so another section (the sandbox) can be appended to SECTIONS.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

WARM_UP = [("12", "12"), ("\\sin^2 x + \\cos^2 x", "1"), ("y = 2x + 1", "2x - y + 1 = 0"),
           ("\\sqrt{8}", "2\\sqrt{2}")]
DATA = ROOT / "tests" / "verifiers" / "data"
SETS = {"pairs": (DATA / "math_pairs.jsonl", "category"), "outputs": (DATA / "math_outputs.jsonl", "class")}
HOSTILE = ["10^{10^{10}}", "9**9**9", "(" * 5000 + "1" + ")" * 5000, "\\frac{" * 3000 + "1",
           "\\sqrt{" * 2000 + "2" + "}" * 2000, "1" * 5000, "x" * 1500, "100!!!!",
           "\\binom{100000000}{50000000}", "step " * 1_000_000 + "\\boxed{7}", "{" * 5_000_000,
           "answer: " * 600_000, "**a** " * 800_000, "$x$ " * 500_000, "\\boxed{" * 700_000,
           "2^{2^{2^{2^{2^{2}}}}}", "9^{9^{9}}", "\\begin{pmatrix}" + "1&" * 500 + "\\end{pmatrix}",
           "1 " * 2_500_000 + "\\boxed{7}", "\\boxed " * 600_000, "filler " * 700_000 + "\\boxed{99}"]
"""The costly hostile inputs of tests/verifiers/test_math.py and test_extract.py: the tests check only
that each gets a verdict; what each costs is measured here."""


def load(name: str, quick: bool) -> tuple[list[dict], str]:
    path, key = SETS[name]
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return (rows[::3] if quick else rows), key


def score(name: str, check: Callable[[str, str], bool], rows: list[dict], key: str, repeats: int) -> dict:
    """Accuracy / false positives overall and per class from the first pass, throughput over all."""
    for gold, pred in WARM_UP:  # imports, worker start, sympy's lazy modules
        _safe(check, gold, pred)
    said = []
    started = time.perf_counter()
    for round_ in range(repeats):
        for row in rows:
            result = _safe(check, row["gold"], row["pred"])
            if round_ == 0:
                said.append(result)
    elapsed = time.perf_counter() - started
    per_class: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])  # rows, right, false positives
    for s, row in zip(said, rows):
        counts = per_class[row[key]]
        counts[0] += 1
        counts[1] += s == row["equal"]
        counts[2] += s and not row["equal"]
    negatives = sum(not row["equal"] for row in rows)
    false_positives = sum(c[2] for c in per_class.values())
    return {
        "verifier": name,
        "pairs": len(rows),
        "accuracy": sum(c[1] for c in per_class.values()) / len(rows),
        "false_positive_rate": false_positives / max(1, negatives),
        "false_positives": false_positives,
        "negatives": negatives,
        "checks_per_second": repeats * len(rows) / elapsed,
        "per_class": {k: {"rows": c[0], "accuracy": c[1] / c[0], "false_positives": c[2]}
                      for k, c in sorted(per_class.items())},
    }


def _safe(check: Callable[[str, str], bool], gold: str, pred: str) -> bool:
    try:
        return bool(check(gold, pred))
    except Exception:  # a crash is a "no" for the verifier that crashed
        return False


def ours_inline(gold: str, pred: str) -> bool:
    from verifiers import math as math_verifier

    math_verifier.set_inline(True)
    return math_verifier.verify(gold, pred).correct


def ours_worker(gold: str, pred: str) -> bool:
    from verifiers import math as math_verifier

    math_verifier.set_inline(False)
    return math_verifier.verify(gold, pred).correct


def math_verify_check(gold: str, pred: str) -> bool:
    from math_verify import parse, verify

    # A bare answer is wrapped in $...$ as its README does; a whole text is given as it is
    # (its own extraction finds the last boxed / "final answer" / last math span).
    def wrap(text: str) -> str:
        whole = "\n" in text or "\\boxed" in text or "answer" in text.lower() or len(text) > 200
        return text if whole else f"${text}$"

    return verify(parse(wrap(gold)), parse(wrap(pred)))


def math_section(quick: bool) -> list[dict]:
    _one_core()
    repeats = 1 if quick else 3
    try:
        import math_verify  # noqa: F401
        have_math_verify = True
    except ImportError:
        have_math_verify = False
    rows = []
    for set_name in SETS:
        data, key = load(set_name, quick)
        for name, check in (("selfplay math (inline)", ours_inline), ("selfplay math (worker)", ours_worker)):
            rows.append({"set": set_name, **score(name, check, data, key, repeats)})
        if have_math_verify:
            rows.append({"set": set_name, **score("math-verify 0.9.0", math_verify_check, data, key, repeats)})
        else:
            rows.append({"set": set_name, "verifier": "math-verify", "error": "not installed (pip install math-verify)"})
    return rows


def hostile_section(quick: bool) -> list[dict]:
    """Seconds for each hostile input the tests only check for a verdict (ours, worker mode)."""
    from verifiers import math as math_verifier
    from verifiers.extract import final_answer

    math_verifier.set_inline(False)
    times = []
    for pred in HOSTILE[: 5 if quick else None]:
        started = time.perf_counter()
        final_answer(pred)
        math_verifier.verify("12", pred)
        times.append(time.perf_counter() - started)
    return [{"verifier": "selfplay math (worker)", "inputs": len(times), "max_seconds": max(times),
             "total_seconds": sum(times)}]


def _one_core() -> None:
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})


SECTIONS: dict[str, Callable[[bool], list[dict]]] = {"math": math_section, "hostile": hostile_section}


def markdown_table(rows: list[dict]) -> str:
    columns = [c for c in ("set", "verifier", "pairs", "accuracy", "false_positive_rate", "false_positives",
                           "checks_per_second", "inputs", "max_seconds", "total_seconds", "error")
               if any(c in row for row in rows)]
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        lines.append("| " + " | ".join(_fmt(row.get(c, "")) for c in columns) + " |")
    return "\n".join(lines)


def class_table(rows: list[dict], set_name: str) -> str:
    """Per class: rows, then accuracy / false positives for each verifier."""
    scored = [r for r in rows if r.get("set") == set_name and "per_class" in r and "worker" not in r["verifier"]]
    if not scored:
        return ""
    classes = scored[0]["per_class"]
    header = ["class", "rows"] + [f"{r['verifier'].split(' (')[0]} acc / FP" for r in scored]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name, counts in classes.items():
        cells = [name, str(counts["rows"])]
        for r in scored:
            c = r["per_class"][name]
            cells.append(f"{c['accuracy']:.2f} / {c['false_positives']}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.3f}" if value < 10 else f"{value:,.0f}"
    return str(value)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a third of the pairs, one pass")
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args(argv)
    results = {}
    for name, section in SECTIONS.items():
        rows = section(args.quick)
        results[name] = rows
        print(f"\n## {name}\n\n{markdown_table(rows)}")
        for set_name in SETS:
            table = class_table(rows, set_name)
            if table:
                print(f"\n### {name}: {set_name} by {SETS[set_name][1]}\n\n{table}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
