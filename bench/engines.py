"""Generated tokens/s of the vLLM and transformers engines on the same prompts and sampling.

    python bench/engines.py [--quick] [--json PATH] [--model DIR] [--engines hf,hf-generate,vllm]
                            [--bootstrap models/reference/bootstrap.json]

`hf-generate` is the transformers engine as it was before its continuous-batching decode loop
(micro-batches through `model.generate`), loaded from git (--baseline-commit), so the table
shows the new loop's speed-up as a ratio measured in the same run.

Both engines load the same model (by default a freshly saved random reference model, so nothing
here depends on a trained one) and answer the same batch: 64 chat prompts x n=4 at temperature
1.0, max_tokens 128 (--quick: 16 x 2, 64 tokens). Each engine gets one untimed warm-up batch,
then the best of --repeats timed runs counts. Prints a markdown table with the vLLM / hf ratio
and writes JSON. When the bootstrap's report exists, its training time and held-out pass@1 table
are printed too.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[1]))


def workload(quick: bool):
    from selfplay.engines.base import GenerationRequest

    prompts, n, max_tokens = (16, 2, 64) if quick else (64, 4, 128)
    questions = [f"What is {17 * i + 3} + {29 * i + 11}? Think step by step." for i in range(prompts)]
    requests = [GenerationRequest(prompt=[{"role": "user", "content": q}], n=n, temperature=1.0,
                                  max_tokens=max_tokens, seed=i) for i, q in enumerate(questions)]
    return requests, {"prompts": prompts, "n": n, "temperature": 1.0, "max_tokens": max_tokens}


BASELINE_COMMIT = "82ac465"
"""The last commit whose hf engine ran micro-batches through model.generate."""


def baseline_hf_engine(config, commit: str):
    """The hf engine of `commit`, imported from git as a module of its own."""
    import importlib.util
    import subprocess

    from selfplay.engines.resolve import resolve_model

    source = subprocess.run(["git", "show", f"{commit}:selfplay/engines/hf.py"], capture_output=True, text=True,
                            check=True, cwd=Path(__file__).parents[1]).stdout
    path = Path(tempfile.mkdtemp()) / "hf_generate.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("hf_generate", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["hf_generate"] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module.HFEngine(config, resolve_model(config.model))


def measure(kind: str, model: str, requests, compile_vllm: bool, repeats: int, baseline: str) -> dict:
    from selfplay.engines import EngineConfig, load_engine

    config = EngineConfig(model=model, engine="hf" if kind == "hf-generate" else kind, enforce_eager=not compile_vllm,
                          batch_size=64)
    started = time.perf_counter()
    engine = baseline_hf_engine(config, baseline) if kind == "hf-generate" else load_engine(config)
    load_s = time.perf_counter() - started
    try:
        engine.generate(requests[:2])  # warm-up: first-call allocations and kernel selection
        timings = []
        for _ in range(repeats):  # seeded requests: every repeat generates the same tokens
            started = time.perf_counter()
            results = engine.generate(requests)
            timings.append(time.perf_counter() - started)
        seconds = min(timings)  # the best run: other load on the machine only ever slows one down
    finally:
        engine.close()
    completions = [c for r in results for c in r.completions]
    tokens = sum(c.completion_tokens for c in completions)
    print(f"  {kind}: {tokens} tokens, runs of {', '.join(f'{t:.1f}' for t in timings)} s", file=sys.stderr)
    return {"engine": kind, "load_s": round(load_s, 1), "seconds": round(seconds, 2), "tokens": tokens,
            "tokens_per_s": round(tokens / seconds, 1), "runs_s": [round(t, 2) for t in timings],
            "finished_by_length": sum(c.finish_reason == "length" for c in completions) / len(completions)}


def bootstrap_summary(path: Path) -> dict | None:
    """Training time and the held-out pass@1 table from `python -m selfplay.bootstrap`'s report."""
    if not path.is_file():
        return None
    from selfplay.bootstrap import report_table

    report = json.loads(path.read_text())
    return {"path": str(path), "train_seconds": report.get("training", {}).get("train_seconds"),
            "solve": report.get("solve", {}), "table": report_table(report)}


def print_tables(runs: dict, settings: dict, boot: dict | None) -> None:
    print("\n| engine | tokens/s | tokens | seconds | load s | ended by max_tokens |\n|---|---|---|---|---|---|")
    for r in runs.values():
        print(f"| {r['engine']} | {r['tokens_per_s']:.0f} | {r['tokens']} | {r['seconds']} | {r['load_s']} "
              f"| {r['finished_by_length']:.0%} |")
    if "ratio_vllm_over_hf" in settings:
        print(f"| vllm / hf | {settings['ratio_vllm_over_hf']:.2f}x | | | | |")
    if "ratio_hf_over_hf_generate" in settings:
        print(f"| hf / hf-generate | {settings['ratio_hf_over_hf_generate']:.2f}x | | | | |")
    print(f"\n{settings['prompts']} prompts x n={settings['n']}, temperature {settings['temperature']}, "
          f"max_tokens {settings['max_tokens']}, model {settings['model']}")
    if boot:
        print(f"\nbootstrap ({boot['path']}): training {boot['train_seconds']} s\n\n{boot['table']}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="a smaller batch (a smoke run)")
    ap.add_argument("--json", help="write the results here")
    ap.add_argument("--model", help="model directory or hub id (default: a fresh random reference model)")
    ap.add_argument("--engines", default="hf,hf-generate,vllm", help="comma-separated, from hf, hf-generate and vllm")
    ap.add_argument("--baseline-commit", default=BASELINE_COMMIT, help="where hf-generate comes from")
    ap.add_argument("--compile", action="store_true", help="let vLLM compile the model (slow start on CPU)")
    ap.add_argument("--repeats", type=int, default=3, help="timed runs per engine; the best counts")
    ap.add_argument("--bootstrap", default="models/reference/bootstrap.json", help="the bootstrap's report")
    args = ap.parse_args()
    kinds = [k.strip() for k in args.engines.split(",") if k.strip()]
    if not kinds or set(kinds) - {"hf", "hf-generate", "vllm"}:
        sys.exit(f"--engines takes hf, hf-generate and/or vllm, got {args.engines!r}")
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    with tempfile.TemporaryDirectory() as scratch:
        model = args.model
        if model is None:
            from selfplay.refmodel import save_random_model

            model = str(save_random_model(Path(scratch) / "random-reference"))
        requests, settings = workload(args.quick)
        settings["model"] = args.model or "random reference model (untrained)"
        runs = {kind: measure(kind, model, requests, args.compile, args.repeats, args.baseline_commit) for kind in kinds}
    if {"hf", "vllm"} <= runs.keys():
        settings["ratio_vllm_over_hf"] = round(runs["vllm"]["tokens_per_s"] / runs["hf"]["tokens_per_s"], 2)
    if {"hf", "hf-generate"} <= runs.keys():
        settings["ratio_hf_over_hf_generate"] = round(runs["hf"]["tokens_per_s"] / runs["hf-generate"]["tokens_per_s"], 2)
    boot = bootstrap_summary(Path(args.bootstrap))
    print_tables(runs, settings, boot)
    if args.json:
        Path(args.json).write_text(json.dumps({"settings": settings, "engines": runs, "bootstrap": boot}, indent=2))


if __name__ == "__main__":  # vLLM spawns worker processes, which re-import this file
    main()
