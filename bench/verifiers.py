"""Benchmark the verifiers: accuracy, false positives and throughput on labelled data.

    python bench/verifiers.py [--quick] [--json PATH]

Math section: our math verifier and `math-verify` (PyPI math_verify) side by side on
tests/verifiers/data/math_pairs.jsonl, each in this one process (ours with sympy inline, as a
pool worker runs it; plus ours with its sympy worker subprocess). False-positive rate is
"said equal" among pairs labelled not equal. Each section is a function returning rows, so
another section (the sandbox) can be appended to SECTIONS.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

WARM_UP = [("12", "12"), ("\\sin^2 x + \\cos^2 x", "1"), ("y = 2x + 1", "2x - y + 1 = 0"),
           ("\\sqrt{8}", "2\\sqrt{2}")]
PAIRS_PATH = ROOT / "tests" / "verifiers" / "data" / "math_pairs.jsonl"


def load_pairs(quick: bool) -> list[dict]:
    pairs = [json.loads(line) for line in PAIRS_PATH.read_text().splitlines() if line.strip()]
    return pairs[::3] if quick else pairs


def score(name: str, check: Callable[[str, str], bool], pairs: list[dict], repeats: int) -> dict:
    """Accuracy / false-positive rate from the first pass, throughput over all passes."""
    for gold, pred in WARM_UP:  # imports, worker start, sympy's lazy modules
        _safe(check, gold, pred)
    said = []
    started = time.perf_counter()
    for round_ in range(repeats):
        for pair in pairs:
            result = _safe(check, pair["gold"], pair["pred"])
            if round_ == 0:
                said.append(result)
    elapsed = time.perf_counter() - started
    negatives = [s for s, p in zip(said, pairs) if not p["equal"]]
    correct = sum(s == p["equal"] for s, p in zip(said, pairs))
    return {
        "verifier": name,
        "pairs": len(pairs),
        "accuracy": correct / len(pairs),
        "false_positive_rate": sum(negatives) / max(1, len(negatives)),
        "false_positives": sum(negatives),
        "checks_per_second": repeats * len(pairs) / elapsed,
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

    # Gold is a bare LaTeX answer; wrap it (and bare predictions) in $...$ as its README does.
    bare = "\n" not in pred and "\\boxed" not in pred and "answer" not in pred.lower()
    return verify(parse(f"${gold}$"), parse(f"${pred}$" if bare else pred))


def math_section(quick: bool) -> list[dict]:
    pairs = load_pairs(quick)
    repeats = 1 if quick else 3
    rows = [score("selfplay math (inline)", ours_inline, pairs, repeats),
            score("selfplay math (worker)", ours_worker, pairs, repeats)]
    try:
        import math_verify  # noqa: F401
    except ImportError:
        rows.append({"verifier": "math-verify", "error": "not installed (pip install math-verify)"})
    else:
        rows.append(score("math-verify", math_verify_check, pairs, repeats))
    return rows


SECTIONS: dict[str, Callable[[bool], list[dict]]] = {"math": math_section}


def markdown_table(rows: list[dict]) -> str:
    columns = [c for c in ("verifier", "pairs", "accuracy", "false_positive_rate",
                           "false_positives", "checks_per_second", "error")
               if any(c in row for row in rows)]
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        lines.append("| " + " | ".join(_fmt(row.get(c, "")) for c in columns) + " |")
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
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
