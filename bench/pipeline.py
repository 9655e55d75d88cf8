"""Round throughput against the raw engine, and the driver's memory as the problem count grows.

    python bench/pipeline.py [--quick] [--json PATH] [--model models/reference] [--engine hf]

1. The raw engine alone, in the same kind of Ray actor, generates for the round's requests (same
   prompts, n, temperature, max_tokens, seeds): generated tokens/s.
2. The whole round on the same problems (verification, shard writing, orchestration included;
   critic and revisions off so the engine sees the same requests): generated tokens/s. Target
   ratio >= 0.9. The full critique-and-revise round is also timed, for information.
3. The driver's peak RSS for N and 10*N problems, each in a fresh process. Target: flat.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[1]))
os.environ.setdefault("RAY_AUTH_MODE", "disabled")


def _round_config(model: str, engine: str, out_dir: str, n: int, difficulty: int, critic: bool, max_samples: int,
                  revisions: int = 1):
    from selfplay.actors import ModelConfig
    from selfplay.engines.config import EngineConfig
    from selfplay.pipeline import ClusterConfig, CriticConfig, OutputConfig, RoundConfig, VerifierConfig
    from selfplay.problems import SourceConfig, TaskSpec
    from selfplay.strategies import SamplingConfig, StrategyConfig

    return RoundConfig(
        solver=ModelConfig(EngineConfig(model=model, engine=engine, enforce_eager=True, max_model_len=512), batch_size=64),
        source=SourceConfig(kind="tasks", tasks=[TaskSpec("addition", n, difficulty)]),
        critic=CriticConfig(enabled=critic),
        strategy=StrategyConfig(k=4, wave=4, max_samples=max_samples, revisions=revisions, unsolvable_after=max_samples,
                                sampling=SamplingConfig(temperature=1.0, max_tokens=96, critic_max_tokens=24)),
        verifier=VerifierConfig(workers=1), output=OutputConfig(out_dir=out_dir),
        cluster=ClusterConfig(num_cpus=2, max_in_flight=128), progress_every_s=0)


def raw_engine(model: str, engine: str, n: int, difficulty: int) -> dict:
    """The engine alone, in the same kind of Ray actor the round uses, fed the round's first-wave
    requests in batches with two in flight (as the round's pool does)."""
    import ray

    from selfplay import prompts
    from selfplay.actors import EngineActor
    from selfplay.engines.base import GenerationRequest
    from selfplay.problems import iter_problems
    from selfplay.strategies import sample_seed

    cfg = _round_config(model, engine, "unused", n, difficulty, critic=False, max_samples=4)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, ignore_reinit_error=True)
    actor = EngineActor.options(num_cpus=cfg.solver.num_cpus).remote(cfg.solver.engine)
    problems = list(iter_problems(cfg.source))
    s = cfg.strategy.sampling
    requests = [GenerationRequest(prompts.solver_messages(p.question), n=cfg.strategy.wave, temperature=s.temperature,
                                  max_tokens=s.max_tokens, seed=sample_seed(p.id, 0, 0)) for p in problems]
    ray.get(actor.identity.remote())  # up and warmed (the actor warms its engine at start)
    t = time.perf_counter()
    size = cfg.solver.batch_size
    refs = [actor.generate.remote(requests[i : i + size]) for i in range(0, len(requests), size)]
    tokens = sum(c.completion_tokens for batch in ray.get(refs) for r in batch for c in r.completions)
    seconds = time.perf_counter() - t
    ray.kill(actor)
    return {"tokens": tokens, "seconds": round(seconds, 2), "tokens_per_s": round(tokens / seconds, 1)}


def whole_round(model: str, engine: str, n: int, difficulty: int, critic: bool) -> dict:
    """The round on the same problems. Without critic and revisions it generates exactly the raw
    engine's requests, so the ratio is the cost of everything around the engine; with them it
    shows the throughput of the full critique-and-revise loop (a different token mix)."""
    from selfplay.pipeline import run_round

    with tempfile.TemporaryDirectory() as out:
        stats = run_round(_round_config(model, engine, out, n, difficulty, critic=critic, max_samples=4,
                                        revisions=1 if critic else 0))
    run = stats["this_run"]
    return {"tokens": run["generated_tokens"], "seconds": run["seconds"], "tokens_per_s": run["tokens_per_s"],
            "kept_rate": round(stats["kept_rate"], 3)}


def driver_peak_rss(model: str, engine: str, n: int) -> dict:
    """Run a round of n problems in a fresh driver process; its peak RSS in MiB."""
    out = subprocess.run([sys.executable, __file__, "--child-memory", str(n), "--model", model, "--engine", engine],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _child_memory(n: int, model: str, engine: str) -> None:
    import ray

    from selfplay.pipeline import run_round

    with tempfile.TemporaryDirectory() as out:
        cfg = _round_config(model, engine, out, n, 3, critic=False, max_samples=1)
        # small shards and frequent commits: memory must stay flat because buffers are bounded
        from dataclasses import replace

        cfg = replace(cfg, strategy=replace(cfg.strategy, wave=1, k=1), output=replace(cfg.output, max_rows=500))
        t = time.perf_counter()
        stats = run_round(cfg)
        ray.shutdown()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"problems": stats["problems"], "peak_rss_mib": round(peak, 1), "seconds": round(time.perf_counter() - t, 1)}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="fewer problems (a smoke run)")
    ap.add_argument("--json", help="write the results here")
    ap.add_argument("--model", default="models/reference")
    ap.add_argument("--engine", default="hf", choices=["hf", "vllm"])
    ap.add_argument("--child-memory", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child_memory:
        return _child_memory(args.child_memory, args.model, args.engine)
    if not Path(args.model, "config.json").exists():
        sys.exit(f"{args.model} is not a model directory: run `python -m selfplay.bootstrap` first")
    n = 64 if args.quick else 256
    mem_n = 50 if args.quick else 200
    raw = raw_engine(args.model, args.engine, n, 4)
    rnd = whole_round(args.model, args.engine, n, 4, critic=False)
    full = whole_round(args.model, args.engine, n, 4, critic=True)
    small, large = driver_peak_rss(args.model, args.engine, mem_n), driver_peak_rss(args.model, args.engine, 10 * mem_n)
    result = {"engine": args.engine, "problems": n, "raw_engine": raw, "round": rnd, "round_with_critic": full,
              "round_over_raw": round(rnd["tokens_per_s"] / raw["tokens_per_s"], 3),
              "driver_memory": {"n": small, "10n": large, "ratio": round(large["peak_rss_mib"] / small["peak_rss_mib"], 3)}}
    rows = [
        ("raw engine tokens/s", f"{raw['tokens_per_s']:.0f}", f"{raw['tokens']} tokens in {raw['seconds']} s"),
        ("whole round tokens/s, same requests", f"{rnd['tokens_per_s']:.0f}", f"{rnd['tokens']} tokens in {rnd['seconds']} s, kept {rnd['kept_rate']}"),
        ("round / raw", f"{result['round_over_raw']:.2f}", "target >= 0.9"),
        ("round with critic + revisions, tokens/s", f"{full['tokens_per_s']:.0f}", f"{full['tokens']} tokens in {full['seconds']} s (other token mix)"),
        (f"driver peak RSS, {small['problems']} problems", f"{small['peak_rss_mib']:.0f} MiB", f"{small['seconds']} s"),
        (f"driver peak RSS, {large['problems']} problems", f"{large['peak_rss_mib']:.0f} MiB", f"{large['seconds']} s"),
        ("10N / N memory", f"{result['driver_memory']['ratio']:.2f}", "target: flat (about 1.0)"),
    ]
    print(f"\n| measure ({args.engine} engine) | value | detail |\n|---|---|---|")
    for r in rows:
        print(f"| {r[0]} | {r[1]} | {r[2]} |")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
