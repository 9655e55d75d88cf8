"""Distillation speed of the hand loop, TRL's SFTTrainer and a Ray Train job, on the same examples.

    python bench/distill.py [--quick] [--json PATH] [--round DIR] [--model DIR] [--steps N]

Every trainer fine-tunes the same base model (default models/reference) on the same examples (the
sft/ and critic/ rows of one real demo round, default out/flywheel-demo/verified/round-1: what
`make demo` writes; --round another) for the same optimizer steps, batch size and learning rate
(the demo's: batch 32, lr 3e-4). Arms:

  loop          selfplay.train.train_sft in this process (distill.trainer=loop)
  trl           TRL's SFTTrainer in this process (trainer=trl, the default, workers=0)
  trl-lean      the same, logging every 1000 steps and no token counting (how much is Trainer logging)
  ray-1         a Ray Train job on 1 CPU worker of 2 threads (workers=1: the flywheel's default), local Ray
  ray-2         a Ray Train job on 2 CPU workers of 1 thread, gloo (workers=2), on a local Ray

Prints a markdown table: seconds per step (train only) and its ratio to the loop, the whole call's
seconds (model load, tokenization, save; for ray-N also the worker group's start), and the final
loss (mean over the last logging window). The machine is shared: read ratios within one run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[1]))
os.environ.setdefault("RAY_AUTH_MODE", "disabled")


def _cpu() -> dict[str, str]:
    lscpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    model = next((line.split(":", 1)[1].strip() for line in lscpu.splitlines() if line.startswith("Model name")), "?")
    flags = next((line.split(":", 1)[1].split() for line in lscpu.splitlines() if line.startswith("Flags")), [])
    return {"model": model, "avx2": "avx2" in flags, "avx512f": "avx512f" in flags, "cores": os.cpu_count()}


def _arm(name: str, cfg, out: Path) -> dict:
    from selfplay import distill_trl
    from selfplay.distill import distill

    lean = name == "trl-lean"
    if lean:  # the Trainer's own per-step bookkeeping, turned down
        original = distill_trl._training_args
        distill_trl._training_args = lambda *a, **k: original(*a, **k) | {"logging_steps": 1000,
                                                                             "include_num_input_tokens_seen": "no"}
    started = time.perf_counter()
    try:
        report = distill(replace(cfg, out_dir=str(out / name)), log_fn=None)
    finally:
        if lean:
            distill_trl._training_args = original
    wall = time.perf_counter() - started
    return {"arm": name, "steps": report["steps"], "train_seconds": report["train_seconds"],
            "seconds_per_step": round(report["train_seconds"] / report["steps"], 4), "wall_seconds": round(wall, 1),
            "final_loss": report["final_loss"], "examples": report["kept_examples"],
            "load_average": round(os.getloadavg()[0], 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="40 steps instead of 150, no ray-N arm")
    ap.add_argument("--json", help="write the results here")
    ap.add_argument("--round", default="out/flywheel-demo/verified/round-1", help="a demo round directory")
    ap.add_argument("--model", default="models/reference", help="the base model")
    ap.add_argument("--steps", type=int, help="optimizer steps per arm (default 150; --quick 40)")
    ap.add_argument("--arms", default="loop,trl,trl-lean,ray-1,ray-2", help="comma-separated")
    args = ap.parse_args()
    if not Path(args.round, "manifest.json").exists():
        sys.exit(f"no round in {args.round}: run `make demo` first, or pass --round <a round directory>")
    import ray
    import torch

    from selfplay.distill import DistillConfig

    steps = args.steps or (40 if args.quick else 150)
    arms = [a for a in args.arms.split(",") if not (args.quick and a.startswith("ray-"))]
    cfg = DistillConfig(base_model=args.model, rounds=[args.round], out_dir="unused", epochs=1.0, min_steps=steps,
                        max_steps=steps, batch_size=32, lr=3e-4, warmup_steps=10, threads=2)
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-distill-") as scratch:
        for name in arms:
            trainer = {"loop": {"trainer": "loop"},
                       "ray-1": {"trainer": "trl", "workers": 1, "threads": 2, "checkpoint_every": steps},
                       "ray-2": {"trainer": "trl", "workers": 2, "threads": 1, "checkpoint_every": steps},
                       }.get(name, {"trainer": "trl"})
            if name.startswith("ray-") and not ray.is_initialized():
                ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
                         runtime_env={"env_vars": {"PYTHONPATH": str(Path(__file__).parents[1])}})
            rows.append(_arm(name, replace(cfg, **trainer), Path(scratch)))
            print(f"{name}: {rows[-1]}", file=sys.stderr)
    loop = next((r for r in rows if r["arm"] == "loop"), None)
    for r in rows:
        r["ratio_to_loop"] = round(r["seconds_per_step"] / loop["seconds_per_step"], 2) if loop else None
    result = {"date": time.strftime("%Y-%m-%d"), "cpu": _cpu(), "torch": torch.__version__, "python": platform.python_version(),
              "round": args.round, "model": args.model, "steps": steps, "batch_size": 32, "rows": rows}
    print(f"{result['date']}, {result['cpu']['model']} (AVX2 {result['cpu']['avx2']}, AVX-512 {result['cpu']['avx512f']}), "
          f"{steps} steps of 32 examples from {args.round}\n")
    print("| arm | s/step (train) | ratio to loop | whole call s | final loss | load average after |\n"
          "|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['arm']} | {r['seconds_per_step']:.3f} | {r['ratio_to_loop']} | {r['wall_seconds']} | {r['final_loss']} "
              f"| {r['load_average']} |")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
