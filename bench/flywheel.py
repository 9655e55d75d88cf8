"""Benchmark the flywheel demo: held-out pass@1 per round for both arms, and where the time goes.

    python bench/flywheel.py                 # the demo preset (flywheel=demo), as `make demo` runs it
    python bench/flywheel.py --quick         # fewer problems and rounds: a smoke run
    python bench/flywheel.py --json out.json --out-dir /tmp/fw

Prints the per-round table and the seconds per step (bootstrap, generate, distil, evaluate), and
writes them as JSON. A rerun into the same --out-dir resumes (and so times only what was left).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
QUICK = ["rounds=2", "curriculum.problems=24", "evaluate.problems=20", "evaluate.critic_examples=20"]


def _config(out_dir: str, quick: bool, overrides: list[str]):
    from hydra import compose, initialize_config_dir

    from selfplay.flywheel import flywheel_config

    with initialize_config_dir(str(ROOT / "conf"), version_base=None):
        cfg = compose("flywheel", overrides=["flywheel=demo", f"out_dir={out_dir}", *(QUICK if quick else []), *overrides])
    return flywheel_config(cfg)


def _step_seconds(state: dict) -> dict[str, float]:
    totals: dict[str, float] = {"bootstrap": state.get("bootstrap_seconds", 0.0)}
    for key, seconds in state["done"].items():
        step = key.rsplit("/", 1)[-1]
        totals[step] = round(totals.get(step, 0.0) + seconds, 2)
    return totals


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer problems and rounds")
    parser.add_argument("--json", help="write the results here")
    parser.add_argument("--out-dir", default="out/bench-flywheel", help="the flywheel's output directory")
    parser.add_argument("overrides", nargs="*", help="more Hydra overrides for the flywheel config")
    args = parser.parse_args()
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    sys.path.insert(0, str(ROOT))
    from selfplay.flywheel import run_flywheel
    from selfplay.report import round_table

    cfg = _config(args.out_dir, args.quick, args.overrides)
    started = time.perf_counter()
    state = run_flywheel(cfg)
    wall = round(time.perf_counter() - started, 1)
    steps = _step_seconds(state)
    print(round_table(state))
    print()
    print("| step | seconds |\n|---|---|\n" + "\n".join(f"| {k} | {v} |" for k, v in steps.items()) + f"\n| wall (this run) | {wall} |")
    if args.json:
        Path(args.json).write_text(json.dumps({"rounds": state["rounds"], "control": state["control"],
                                               "step_seconds": steps, "wall_seconds": wall, "cpus": os.cpu_count(),
                                               "quick": args.quick}, indent=2) + "\n")


if __name__ == "__main__":
    main()
