"""Round throughput against the engine given every request at once, and the driver's memory.

    python bench/pipeline.py [--quick] [--json PATH] [--model models/reference] [--engine vllm] [--repeats N]

For each of two length mixes, on the same problems:

1. The round without critic (first wave only: the solver's requests alone): generated tokens/s,
   verification, shard writing and orchestration included. Every request it sent is recorded.
2. The same requests given to a fresh engine actor all at once (the engine's own limit: its
   scheduler sees every request from the start). Target: round / all-at-once >= 0.9.
3. The round with critic and revisions, and its own requests all at once, the same way.

Each pair runs back to back, `--repeats` times (the median pair is reported, with every ratio):
the host's speed drifts by tens of percent between minutes, so only a pair's ratio is comparable.
Failed requests are counted on both sides (a critic or revise prompt longer than the model's
positions is refused alike in both).

The mixes: "demo" is the reference model's own traces on the demo's addition problems (short,
even); "long-tail" forces each request's length from its seed (ignore_eos and max_tokens drawn
from a log-normal with median 60, p95 ~286, capped at 480 tokens: reasoning-trace shaped), so the
mix does not depend on the model. The bench applies it by wrapping `EnginePool.generate` in this
process; the round is otherwise the real one.

4. The driver's peak RSS for N and 10*N problems, each in a fresh process. Target: flat.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import math
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[1]))
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
# A busy machine can take minutes to register a node agent (the test suite allows the same).
os.environ.setdefault("RAY_agent_register_timeout_ms", "300000")

LONG_TAIL = {"median": 60, "sigma": 0.95, "max": 480}
"""Log-normal lengths: median 60 tokens, p95 = 60 * e^(1.645 * 0.95) ~ 286, at most 480."""


def forced_length(seed: int | None) -> int:
    rng = random.Random(seed)
    return max(1, min(LONG_TAIL["max"], round(LONG_TAIL["median"] * math.exp(rng.gauss(0, LONG_TAIL["sigma"])))))


class RecordedRequests:
    """Wraps EnginePool.generate in this process: records every request the round sends and when
    the first went out and the last came back, and, for the long-tail mix, sets each request's
    length first (ignore_eos, max_tokens from its seed)."""

    def __init__(self, long_tail: bool):
        from selfplay.actors import EnginePool

        self.long_tail, self.requests, self.pool = long_tail, [], EnginePool
        self.real = EnginePool.generate
        self.first_sent = self.last_back = None
        self.failed = 0

    def __enter__(self):
        from selfplay.engines.base import RequestFailed

        recorder, real = self, self.real

        async def generate(pool, request):
            request = recorder.shape(request)
            recorder.requests.append(request)
            recorder.first_sent = recorder.first_sent or time.perf_counter()
            try:
                return await real(pool, request)
            except RequestFailed:
                recorder.failed += 1
                raise
            finally:
                recorder.last_back = time.perf_counter()

        self.pool.generate = generate
        return self

    def shape(self, request):
        if not self.long_tail:
            return request
        return dataclasses.replace(request, ignore_eos=True, max_tokens=forced_length(request.seed))

    def __exit__(self, *exc):
        self.pool.generate = self.real


def _round_config(model: str, engine: str, out_dir: str, n: int, critic: bool, max_samples: int = 4,
                  revisions: int = 1):
    from selfplay.actors import ModelConfig
    from selfplay.engines.config import EngineConfig
    from selfplay.pipeline import ClusterConfig, CriticConfig, OutputConfig, RoundConfig, VerifierConfig
    from selfplay.problems import SourceConfig, TaskSpec
    from selfplay.strategies import SamplingConfig, StrategyConfig

    half = n // 2  # the demo's problems: addition at difficulties 3 and 4
    # "uni": the model runs in vLLM's engine-core process; with "mp" a worker process of its own
    # spins gloo threads that steal a small machine's cores from the compute.
    return RoundConfig(
        solver=ModelConfig(EngineConfig(model=model, engine=engine, enforce_eager=True, max_model_len=512,
                                        distributed_executor_backend="uni")),
        source=SourceConfig(kind="tasks", tasks=[TaskSpec("addition", half, 3), TaskSpec("addition", n - half, 4)]),
        critic=CriticConfig(enabled=critic),
        strategy=StrategyConfig(k=4, wave=4, max_samples=max_samples, revisions=revisions, unsolvable_after=max_samples,
                                sampling=SamplingConfig(temperature=1.0, max_tokens=96, critic_max_tokens=24)),
        verifier=VerifierConfig(workers=1), output=OutputConfig(out_dir=out_dir),
        cluster=ClusterConfig(num_cpus=2, max_in_flight=128), progress_every_s=0)


def whole_round(cfg, long_tail: bool) -> tuple[dict, list]:
    """The round; its throughput and every request it sent. Its clock runs from the first
    request sent to the last result back, as the all-at-once run's does: starting the replicas and
    the verifier pool, and closing them, are fixed costs, not throughput."""
    from selfplay.pipeline import run_round

    with RecordedRequests(long_tail) as recorded:
        stats = run_round(cfg)
    tokens, seconds = stats["this_run"]["generated_tokens"], recorded.last_back - recorded.first_sent
    return ({"tokens": tokens, "seconds": round(seconds, 2), "tokens_per_s": round(tokens / seconds, 1),
             "round_seconds": stats["this_run"]["seconds"], "requests": len(recorded.requests), "failed": recorded.failed,
             "kept_rate": round(stats["kept_rate"], 3)}, recorded.requests)


def all_at_once(cfg, requests: list) -> dict:
    """A fresh engine actor, like the round's, given every request at once."""
    import ray

    from selfplay.actors import EngineActor

    actor = EngineActor.options(num_cpus=cfg.solver.num_cpus, max_concurrency=len(requests) + 10).remote(
        cfg.solver.engine)
    ray.get(actor.identity.remote())  # up and warmed (the actor warms its engine at start)

    async def run():
        return await asyncio.gather(*(actor.generate.remote(r) for r in requests))

    started = time.perf_counter()
    results = asyncio.run(run())
    seconds = time.perf_counter() - started
    ray.kill(actor)
    lengths = [c.completion_tokens for r in results for c in r.completions]
    return {"tokens": sum(lengths), "seconds": round(seconds, 2), "tokens_per_s": round(sum(lengths) / seconds, 1),
            "requests": len(requests), "failed": sum(bool(r.error) for r in results),
            "length_median": statistics.median(lengths), "length_p95": sorted(lengths)[int(0.95 * len(lengths))],
            "length_max": max(lengths)}


def measure_mix(model: str, engine: str, n: int, mix: str, repeats: int = 1) -> dict:
    """Each run next to its own all-at-once reference, `repeats` times over: the host's speed drifts
    by tens of percent from one minute to the next, so a ratio is read from a pair run back to back,
    and the median pair is reported."""
    long_tail = mix == "long-tail"
    pairs: dict[str, list[tuple[dict, dict]]] = {"plain": [], "critic": []}
    for _ in range(repeats):
        for kind in pairs:
            with tempfile.TemporaryDirectory() as out:
                cfg = _round_config(model, engine, f"{out}/{kind}", n, critic=kind == "critic",
                                    revisions=1 if kind == "critic" else 0)
                run, requests = whole_round(cfg, long_tail)
            once = all_at_once(cfg, requests)
            print(f"{mix}: {kind} round: {json.dumps(run)}\n{mix}: its requests at once: {json.dumps(once)}", file=sys.stderr)
            pairs[kind].append((run, once))
    result = {"mix": mix, "repeats": repeats}
    for kind, (run_key, once_key, ratio_key) in {"plain": ("round", "all_at_once", "round_over_all_at_once"), "critic": (
            "round_with_critic", "critic_all_at_once", "critic_round_over_all_at_once")}.items():
        ratios = [round(run["tokens_per_s"] / once["tokens_per_s"], 3) for run, once in pairs[kind]]
        median = sorted(range(repeats), key=lambda i: ratios[i])[(repeats - 1) // 2]
        result |= {run_key: pairs[kind][median][0], once_key: pairs[kind][median][1], ratio_key: ratios[median],
                   ratio_key + "_each": ratios}
    return result


def driver_peak_rss(model: str, engine: str, n: int) -> dict:
    """Run a round of n problems in a fresh driver process; its peak RSS in MiB."""
    out = subprocess.run([sys.executable, __file__, "--child-memory", str(n), "--model", model, "--engine", engine],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _child_memory(n: int, model: str, engine: str) -> None:
    import ray

    from selfplay.pipeline import run_round

    with tempfile.TemporaryDirectory() as out:
        cfg = _round_config(model, engine, out, n, critic=False, max_samples=1, revisions=0)
        # small shards and frequent commits: memory must stay flat because buffers are bounded
        cfg = dataclasses.replace(cfg, strategy=dataclasses.replace(cfg.strategy, wave=1, k=1),
                                  output=dataclasses.replace(cfg.output, max_rows=500))
        t = time.perf_counter()
        stats = run_round(cfg)
        ray.shutdown()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"problems": stats["problems"], "peak_rss_mib": round(peak, 1), "seconds": round(time.perf_counter() - t, 1)}))


def table(result: dict) -> str:
    lines = [f"| mix | run ({result['engine']} engine) | tokens/s | tokens | seconds | requests | failed | vs all at once |",
             "|---|---|---|---|---|---|---|---|"]
    for m in result["mixes"]:
        once, rnd, c_once, c_rnd = m["all_at_once"], m["round"], m["critic_all_at_once"], m["round_with_critic"]
        shape = f"{m['mix']} (median {once['length_median']:.0f}, p95 {once['length_p95']}, max {once['length_max']})"
        each = lambda key: "" if m["repeats"] == 1 else " (each: " + ", ".join(f"{r:.2f}" for r in m[key + "_each"]) + ")"
        lines += [
            f"| {shape} | every request at once | {once['tokens_per_s']:.0f} | {once['tokens']} | {once['seconds']} | {once['requests']} | {once['failed']} | 1 |",
            f"| | round, no critic | {rnd['tokens_per_s']:.0f} | {rnd['tokens']} | {rnd['seconds']} | {rnd['requests']} | {rnd['failed']} | **{m['round_over_all_at_once']:.2f}**{each('round_over_all_at_once')} |",
            f"| | critic round's requests at once | {c_once['tokens_per_s']:.0f} | {c_once['tokens']} | {c_once['seconds']} | {c_once['requests']} | {c_once['failed']} | 1 |",
            f"| | round with critic + revisions | {c_rnd['tokens_per_s']:.0f} | {c_rnd['tokens']} | {c_rnd['seconds']} | {c_rnd['requests']} | {c_rnd['failed']} | {m['critic_round_over_all_at_once']:.2f}{each('critic_round_over_all_at_once')} |",
        ]
    mem = result["driver_memory"]
    lines += ["", "| driver peak RSS | MiB | seconds |", "|---|---|---|"]
    lines += [f"| {mem[k]['problems']} problems | {mem[k]['peak_rss_mib']:.0f} | {mem[k]['seconds']} |" for k in ("n", "10n")]
    lines += [f"| 10N / N | {mem['ratio']:.2f} | target: flat (about 1.0) |"]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="fewer problems (a smoke run)")
    ap.add_argument("--json", help="write the results here")
    ap.add_argument("--model", default="models/reference")
    ap.add_argument("--engine", default="vllm", choices=["hf", "vllm"])
    ap.add_argument("--mixes", default="demo,long-tail", help="comma-separated, from demo and long-tail")
    ap.add_argument("--repeats", type=int, default=1, help="run each pair (round, all at once) this many times; "
                    "the median ratio is reported")
    ap.add_argument("--child-memory", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child_memory:
        return _child_memory(args.child_memory, args.model, args.engine)
    if not Path(args.model, "config.json").exists():
        sys.exit(f"{args.model} is not a model directory: run `python -m selfplay.bootstrap` first")
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": str(Path(__file__).parents[1])}})
    n = 64 if args.quick else 256
    mem_n = 50 if args.quick else 200
    mixes = [measure_mix(args.model, args.engine, n, mix.strip(), args.repeats) for mix in args.mixes.split(",") if mix.strip()]
    ray.shutdown()
    small, large = driver_peak_rss(args.model, args.engine, mem_n), driver_peak_rss(args.model, args.engine, 10 * mem_n)
    result = {"engine": args.engine, "problems": n, "mixes": mixes,
              "driver_memory": {"n": small, "10n": large, "ratio": round(large["peak_rss_mib"] / small["peak_rss_mib"], 3)}}
    print("\n" + table(result))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":  # vLLM spawns processes that re-import this file
    main()
