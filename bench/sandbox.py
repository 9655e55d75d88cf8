"""Sandbox overhead and containment.

    python bench/sandbox.py [--quick] [--json PATH]

Runs/second of a trivial program through `run_python` (each mode that works here) against
two bare `subprocess.run`s of the same program: this interpreter as a user would start it
(`python -I -c`, the baseline of earlier sessions) and the exact interpreter command the
sandbox runs, minus the sandbox (the base interpreter with `-I -S`). The commands take turns
and each rate is 1 / the median time of one run, so a machine shared with other work slows
them alike. Also how many of the attack programs in tests/verifiers/attacks/ each mode
contains. Prints a markdown table and writes JSON with the date, machine and CPU flags.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from verifiers.sandbox import bwrap_works, run_python  # noqa: E402
from verifiers.sandbox_view import interpreter_view  # noqa: E402

TRIVIAL = "print(sum(range(100)))"


def load_attacks():
    path = REPO / "tests" / "verifiers" / "attacks" / "suite.py"
    spec = importlib.util.spec_from_file_location("sandbox_attack_suite", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def bare(command: list[str]):
    def run() -> None:
        done = subprocess.run(command, capture_output=True, check=True)
        assert done.stdout.strip() == b"4950"
    return run


def sandboxed(isolate: bool):
    def run() -> None:
        result = run_python(TRIVIAL, isolate=isolate)
        assert result.status == "ok" and result.stdout.strip() == "4950", result
    return run


def runs_per_second(runs: dict, n: int) -> dict[str, float]:
    """Each run n times, taking turns (after one warm-up each); 1 / median seconds."""
    for run in runs.values():
        run()
    seconds = {name: [] for name in runs}
    for _ in range(n):
        for name, run in runs.items():
            start = time.perf_counter()
            run()
            seconds[name].append(time.perf_counter() - start)
    return {name: 1 / statistics.median(times) for name, times in seconds.items()}


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


def machine() -> dict:
    info = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    fields = {}
    for line in info.splitlines():
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())  # the first CPU's
    flags = set(fields.get("flags", "").split())
    return {"cpu": fields.get("model name", "?"), "cores": os.cpu_count(),
            "avx2": "avx2" in flags, "avx512f": "avx512f" in flags,
            "kernel": platform.release(), "python": platform.python_version(),
            "bwrap": subprocess.run(["bwrap", "--version"], capture_output=True,
                                    text=True).stdout.strip() if bwrap_works() else None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer runs (about a minute)")
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args()
    n = 20 if args.quick else 100
    attacks = load_attacks()
    modes = ([("bwrap", True)] if bwrap_works() else []) + [("rlimits", False)]
    base = interpreter_view(sys.executable).executable
    runs = {"bare": bare([sys.executable, "-I", "-c", TRIVIAL]),
            "bare -I -S": bare([base, "-I", "-S", "-c", TRIVIAL]),
            **{label: sandboxed(isolate) for label, isolate in modes}}
    load_before = os.getloadavg()[0]
    rates = runs_per_second(runs, n)
    load_after = os.getloadavg()[0]
    rows = [{"mode": label, "runs_per_s": rates[label], "bare_runs_per_s": rates["bare"],
             "bare_s_runs_per_s": rates["bare -I -S"],
             "overhead_ratio": rates["bare"] / rates[label],
             "overhead_ratio_s": rates["bare -I -S"] / rates[label],
             **containment(attacks, isolate)} for label, isolate in modes]
    print("| mode | runs/s | bare `python -I` runs/s | overhead × | bare `-I -S` runs/s | "
          "overhead × (`-I -S`) | attacks contained |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['mode']} | {r['runs_per_s']:.1f} | {r['bare_runs_per_s']:.1f} | "
              f"{r['overhead_ratio']:.2f} | {r['bare_s_runs_per_s']:.1f} | "
              f"{r['overhead_ratio_s']:.2f} | {r['contained']}/{r['attacks']} |")
    for r in rows:
        for name, why in r["failures"].items():
            print(f"NOT CONTAINED ({r['mode']}) {name}: {why}")
        if r["not_promised"]:
            print(f"not promised in {r['mode']} mode: {', '.join(r['not_promised'])}")
    about = machine()
    print(f"{about['cpu']}, {about['cores']} cores, avx2={about['avx2']}, "
          f"avx512f={about['avx512f']}; load average {load_before:.1f} -> {load_after:.1f}")
    if args.json:
        args.json.write_text(json.dumps({
            "benchmark": "sandbox", "date": datetime.date.today().isoformat(),
            "quick": args.quick, "runs": n, "machine": about,
            "load_average": [load_before, load_after], "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
