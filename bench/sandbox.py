"""Sandbox overhead and containment.

    python bench/sandbox.py [--quick] [--json PATH]

Runs/second of a trivial program through `run_python` (each mode that works here) against a
bare `subprocess.run` of the same interpreter, and how many of the attack programs in
tests/verifiers/attacks/ each mode contains. Prints a markdown table and writes JSON.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from verifiers.sandbox import bwrap_works, run_python  # noqa: E402

TRIVIAL = "print(sum(range(100)))"


def load_attacks():
    path = REPO / "tests" / "verifiers" / "attacks" / "suite.py"
    spec = importlib.util.spec_from_file_location("sandbox_attack_suite", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def runs_per_second(run, n: int) -> float:
    run()  # warm caches (bwrap probe, page cache)
    start = time.perf_counter()
    for _ in range(n):
        run()
    return n / (time.perf_counter() - start)


def bare() -> None:
    done = subprocess.run([sys.executable, "-I", "-c", TRIVIAL], capture_output=True, check=True)
    assert done.stdout.strip() == b"4950"


def sandboxed(isolate: bool):
    def run() -> None:
        result = run_python(TRIVIAL, isolate=isolate)
        assert result.status == "ok" and result.stdout.strip() == "4950", result
    return run


def containment(attacks, isolate: bool) -> dict:
    counted, contained, skipped, failures = 0, 0, [], {}
    for name in attacks.attack_names():
        if not attacks.prevented(name, isolate):
            skipped.append(name)
            continue
        outcome = attacks.run_attack(name, isolate)
        counted += 1
        contained += outcome.contained
        if not outcome.contained:
            failures[name] = outcome.why
    return {"attacks": counted, "contained": contained, "not_promised": skipped,
            "failures": failures}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer runs (about 30 s)")
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args()
    n = 10 if args.quick else 50
    attacks = load_attacks()
    modes = ([("bwrap", True)] if bwrap_works() else []) + [("rlimits", False)]
    base = runs_per_second(bare, n)
    rows = []
    for label, isolate in modes:
        rate = runs_per_second(sandboxed(isolate), n)
        rows.append({"mode": label, "runs_per_s": rate, "bare_runs_per_s": base,
                     "overhead_ratio": base / rate, **containment(attacks, isolate)})
    print("| mode | runs/s | bare subprocess runs/s | overhead × | attacks contained |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['mode']} | {r['runs_per_s']:.1f} | {r['bare_runs_per_s']:.1f} | "
              f"{r['overhead_ratio']:.2f} | {r['contained']}/{r['attacks']} |")
    for r in rows:
        for name, why in r["failures"].items():
            print(f"NOT CONTAINED ({r['mode']}) {name}: {why}")
        if r["not_promised"]:
            print(f"not promised in {r['mode']} mode: {', '.join(r['not_promised'])}")
    if args.json:
        args.json.write_text(json.dumps({"benchmark": "sandbox", "quick": args.quick, "runs": n,
                                         "python": platform.python_version(), "rows": rows},
                                        indent=2))


if __name__ == "__main__":
    main()
