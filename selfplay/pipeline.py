"""One self-play round, top to bottom (the data-flow picture in DESIGN.md):

    problems ─► decontaminate ─► solver actors ─► traces ─► verifier pool ─► critic actors ─► revise
                                                                                                 │
      shards (sft / rejected / critic / pairs / prm / problems) + manifest ◄── dedup ◄── accept ◄┘
                                                  + stats.json + README.md (the dataset card)

Each problem is one coroutine (selfplay.strategies.solve); at most `max_in_flight` run at once,
and the engine pools stream each request to a replica as soon as it is ready (the engine decides
what decodes together), so generation, verification, critique and writing overlap while the
driver holds only the problems in flight. Rows are committed per finished
problem; rerunning the same command resumes, skipping the problems already committed.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from selfplay import products, prompts, records
from selfplay.actors import EnginePool, ModelConfig
from selfplay.card import write_card
from selfplay.config import as_dict
from selfplay.hygiene import DecontamConfig, Decontaminator, DedupConfig, Deduper, earlier_rounds, write_decontaminated
from selfplay.problems import BadRow, SourceConfig, check_source, iter_problems
from selfplay.products import PairsConfig, PrmConfig
from selfplay.prompts import PromptConfig
from selfplay.records import Problem
from selfplay.shards import RoundWriter, ShardLimits
from selfplay.stats import RoundStats, Progress
from selfplay.storage import write_json
from selfplay.strategies import AcceptConfig, Handles, Outcome, StrategyConfig, solve
from verifiers import Verdict
from verifiers.pool import VerifierPool

log = logging.getLogger(__name__)

KINDS = {"sft": records.TRACE_SCHEMA, "rejected": records.TRACE_SCHEMA, "critic": records.CRITIC_SCHEMA,
         "pairs": records.PAIR_SCHEMA, "prm": records.PRM_SCHEMA, "problems": records.PROBLEM_STATS_SCHEMA}


@dataclass(frozen=True)
class CriticConfig:
    """The critic role (the Hydra `critic` group)."""

    enabled: bool = True
    """Judge every trace; its critique drives revisions and its calls are scored against the
    verifier (critic/ shards)."""
    share_solver: bool = True
    """Prompt the solver's own replicas as critic (one model, two prompts) instead of `model`."""
    model: ModelConfig | None = None
    """A separate critic model (its own replicas and GPUs) when share_solver is false."""
    judge_share: float = 1.0
    """Share of traces the critic judges, picked by a hash of problem and text (a rerun judges the
    same ones); 1 = every trace. Each judged trace is one critic row, and distillation takes at most
    `critic_ratio` x its solver examples of them, so a round with plenty of traces needs far fewer
    judgements than traces. Only judged traces get a critique for their revision."""

    def __post_init__(self):
        if self.enabled and not self.share_solver and self.model is None:
            raise ValueError("critic.share_solver=false needs critic.model")
        if not 0.0 < self.judge_share <= 1.0:
            raise ValueError(f"critic.judge_share must be in (0, 1], got {self.judge_share}")


@dataclass(frozen=True)
class VerifierConfig:
    workers: int = 0
    """Verifier processes; 0 = one per CPU core."""
    timeout: float = 10.0
    """Seconds one check may take before it counts as a rejection ("timeout")."""


@dataclass(frozen=True)
class OutputConfig(ShardLimits):
    """Where the round goes, and the shard limits (max_rows, max_bytes, max_age_s) it is written with."""

    out_dir: str = "out/demo"
    """Local path or fsspec URI every node can reach; the round goes to <out_dir>/round-<k>/."""


@dataclass(frozen=True)
class ClusterConfig:
    address: str | None = None
    """Ray address ("auto" inside a Ray job); None starts a local Ray."""
    num_cpus: int | None = None
    """CPUs of the local Ray (None = all)."""
    max_in_flight: int = 64
    """Problems in flight at once: bounds driver memory and keeps the engines' batches full."""


@dataclass(frozen=True)
class RoundConfig:
    """One generation round (`python -m selfplay.generate`)."""

    solver: ModelConfig
    round: int = 0
    """Round number k: output goes to round-<k>/, and sampling seeds depend on it."""
    source: SourceConfig = field(default_factory=lambda: SourceConfig(kind="tasks", tasks=[]))
    critic: CriticConfig = field(default_factory=CriticConfig)
    prompt: PromptConfig = field(default_factory=PromptConfig)
    """The prompts the solver and critic see (selfplay.prompts)."""
    strategy: StrategyConfig = field(default_factory=StrategyConfig)
    accept: AcceptConfig = field(default_factory=AcceptConfig)
    verifier: VerifierConfig = field(default_factory=VerifierConfig)
    output: OutputConfig = field(default_factory=OutputConfig)
    cluster: ClusterConfig = field(default_factory=ClusterConfig)
    pairs: PairsConfig = field(default_factory=PairsConfig)
    prm: PrmConfig = field(default_factory=PrmConfig)
    dedup: DedupConfig = field(default_factory=DedupConfig)
    decontam: DecontamConfig = field(default_factory=DecontamConfig)
    progress_every_s: float = 10.0
    """Seconds between progress lines (0 = none)."""
    bootstrap_if_missing: bool = False
    """Build the reference model (`python -m selfplay.bootstrap`, cached) first when
    solver.engine.model does not exist: what the demo preset does on a fresh machine."""

    def __post_init__(self):
        if self.accept.require_critic and not (self.critic.enabled and self.critic.judge_share == 1.0):
            raise ValueError("accept.require_critic needs the critic to judge every trace "
                             "(critic.enabled=true, critic.judge_share=1)")

    @property
    def round_dir(self) -> str:
        return f"{self.output.out_dir.rstrip('/')}/round-{self.round}"

    def hash(self) -> str:
        """What decides the data: a resumed run must match it. Output, cluster and progress
        settings may change between a run and its resumption. Computed once per config (every row
        of a round carries it)."""
        if "_hash" not in self.__dict__:  # a frozen dataclass: its fields, not this cache, are frozen
            self.__dict__["_hash"] = self._compute_hash()
        return self.__dict__["_hash"]

    def _compute_hash(self) -> str:
        d = as_dict(self)
        what = {k: d[k] for k in ("round", "source", "critic", "strategy", "accept", "pairs", "prm", "dedup", "decontam")} | {"solver": d["solver"]["engine"]}
        if what["source"]["only_ids"] is None:  # rounds written before the field existed keep their hash
            del what["source"]["only_ids"]
        if what["solver"]["max_num_batched_tokens"] is None:  # likewise (a scheduling limit, not data)
            del what["solver"]["max_num_batched_tokens"]
        if what["critic"]["judge_share"] == 1.0:  # likewise
            del what["critic"]["judge_share"]
        if self.prompt != PromptConfig():  # so do rounds in the reference style
            what["prompt"] = d["prompt"]
        return hashlib.sha256(orjson.dumps(what, option=orjson.OPT_SORT_KEYS)).hexdigest()[:16]


def run_round(cfg: RoundConfig, solver: EnginePool | None = None) -> dict[str, Any]:
    """Run (or resume) one round; returns the stats written to stats.json. `solver`: replicas
    already serving cfg.solver's model (the flywheel's, which evaluated it) to generate on instead
    of starting new ones; the caller closes them."""
    check_source(cfg.source)  # a source that cannot give one problem fails now, not after the engines start
    decontam = Decontaminator(cfg.decontam)  # benchmark files that cannot be read fail now, too
    dedup = Deduper(cfg.dedup, earlier_rounds(cfg.output.out_dir, cfg.round))  # reads the earlier rounds now
    start_ray(cfg.cluster)
    started = time.time()
    writer = RoundWriter(cfg.round_dir, KINDS, cfg.output)
    own = solver is None
    solver = EnginePool(cfg.solver, "solver") if own else solver
    critic = _critic_pool(cfg, solver)
    verifier = VerifierPool(workers=cfg.verifier.workers or None, timeout=cfg.verifier.timeout)  # None: usable cores
    try:
        writer.set_meta(_manifest_meta(cfg, solver, critic))
        handles = Handles(solve=solver.generate, judge=critic.generate if critic else None,
                          verify=lambda p, text: asyncio.wrap_future(verifier.submit(p.to_dict(), text)), prompt=cfg.prompt,
                          judge_share=cfg.critic.judge_share)
        pools = [solver] + ([critic] if critic is not None and critic is not solver else [])
        before = sum(p.generated_tokens for p in pools)  # a given pool's earlier work is not this round's
        progress = Progress(total=_total(cfg.source), every_s=cfg.progress_every_s,
                            generated_tokens=lambda: sum(p.generated_tokens for p in pools) - before)
        asyncio.run(_drive(cfg, handles, writer, progress, solver, critic, dedup, decontam, _rollout(cfg, handles)))
    finally:
        try:  # commit every finished problem, even when the drive loop or the source raised
            writer.close()
        finally:
            verifier.close(cancel_pending=True)
            if own:
                solver.close()
            if critic is not None and critic is not solver:
                critic.close()
    stats = RoundStats.from_round(cfg.round_dir, cfg.strategy.wave).to_dict()
    stats.update(seconds=round(time.time() - started, 2), this_run=progress.summary())
    write_json(f"{cfg.round_dir}/stats.json", stats)
    write_card(cfg.round_dir, stats)
    print(RoundStats.table(stats), file=sys.stderr)
    return stats


async def _drive(cfg: RoundConfig, h: Handles, writer: RoundWriter, progress: Progress, solver: EnginePool,
                 critic: EnginePool | None, dedup: Deduper, decontam: Decontaminator, rollout) -> None:
    done = writer.done_problem_ids()
    slots = asyncio.Semaphore(cfg.cluster.max_in_flight)
    running: set[asyncio.Task] = set()
    seen: set[str] = set()
    contaminated: list[dict[str, Any]] = []
    reporter = asyncio.ensure_future(progress.report_forever())

    async def one(problem: Problem) -> None:
        try:
            outcome = await solve(problem, h, cfg.strategy, cfg.accept, cfg.round)
            rows = outcome_rows(outcome, cfg, model_identities(solver, critic), dedup)
            rows["prm"] = await products.prm_rows(problem, rows["sft"] + rows["rejected"], cfg.prm, rollout)
        except Exception as e:  # an engine failed for good: record it; a rerun retries the problem
            log.error("problem %s failed: %s", problem.id, e)
            writer.add_error({"where": problem.id, "reason": f"generation failed: {e}", "row": problem.question[:500]})
            progress.failed += 1
        else:
            for reason in outcome.errors:  # requests that could not run, each for its own problem
                writer.add_error({"problem_id": problem.id, "where": problem.source, "reason": reason,
                                  "row": problem.question[:500]})
            writer.add(problem.id, rows)
            progress.finished(outcome)
        finally:
            slots.release()

    try:
        for item in iter_problems(cfg.source):
            if isinstance(item, BadRow):
                writer.add_error(item.to_row())
                progress.bad_rows += 1
                continue
            if item.id in done:
                progress.resumed += 1
                continue
            hit = decontam.check(item.question) if cfg.decontam.benchmarks else None
            if hit is not None:  # checked again by every run: a problem dropped here is never committed
                contaminated.append({"problem_id": item.id, "source": item.source, **hit, "question": item.question[:500]})
                continue
            if item.id in seen:
                writer.add_error({"where": item.source, "reason": f"duplicate problem {item.id}: the same task, question "
                                  "and gold as an earlier row", "row": item.question[:500]})
                continue
            seen.add(item.id)
            await slots.acquire()
            task = asyncio.ensure_future(one(item))
            running.add(task)
            task.add_done_callback(running.discard)
        while running:
            await asyncio.gather(*list(running))
        write_decontaminated(cfg.round_dir, contaminated)  # only after the whole source was read
    finally:
        reporter.cancel()
        progress.print_line(final=True)


def model_identities(solver: EnginePool, critic: EnginePool | None) -> dict[str, dict[str, str]]:
    """Which solver and critic made a row (model id and revision): each row's provenance."""
    return {"solver": solver.identity, "critic": critic.identity if critic else {}}


def outcome_rows(outcome: Outcome, cfg: RoundConfig, models: dict[str, dict[str, str]],
                 dedup: Deduper | None = None) -> dict[str, list[dict]]:
    """Every row one finished problem contributes, by kind (prm rows, which may need rollouts, apart)."""
    p = outcome.problem
    pass_rate = outcome.verified / outcome.samples if outcome.samples else 0.0
    config_hash = cfg.hash()
    # One row per distinct trace: a model often samples the same text twice, and a repeated
    # trace is no new data (and would repeat the row's content-hash id).
    distinct, seen = [], set()
    for a in outcome.attempts:
        if a.text not in seen:
            seen.add(a.text)
            distinct.append(a)
    dupes = dedup.duplicates(p.id, [(a.text, a.verdict.correct) for a in distinct]) if dedup else {}
    kept = [a for i, a in enumerate(distinct) if a.accepted and i not in dupes][: cfg.strategy.k]
    sft, rejected, critic = [], [], []
    for i, a in enumerate(distinct):
        row = _trace_row(p, a, cfg, models["solver"], pass_rate, config_hash)
        (sft if a in kept else rejected).append(row)
        if a in kept:
            row["reject_reason"] = ""
        elif i in dupes:
            row["reject_reason"] = dupes[i]
        elif a.accepted:
            row["reject_reason"] = f"surplus: {cfg.strategy.k} traces already kept for this problem"
        if a.critic is not None:
            critic.append(_critic_row(p, a, cfg, models["critic"], config_hash))
    revisions = [a for a in outcome.attempts if a.revision > 0]
    problem_row = {
        "problem_id": p.id, "task": p.task, "source": p.source, "difficulty": p.difficulty, "split": p.split,
        "status": outcome.status, "samples": outcome.samples, "verified": outcome.verified, "accepted": len(kept),
        "pass_rate": pass_rate, "revisions": len(revisions), "revisions_accepted": sum(a.accepted for a in revisions),
        "revisions_verified": sum(bool(a.verdict and a.verdict.correct) for a in revisions),
        "revision_tokens": sum(a.tokens for a in revisions),
        "tokens": sum(a.tokens for a in outcome.attempts), "critic_judged": len(critic),
        "duplicates": len(outcome.attempts) - len(distinct),
    }
    return {"sft": sft, "rejected": rejected, "critic": critic, "pairs": products.pair_rows(sft, rejected, cfg.pairs),
            "problems": [problem_row]}


def _verdict_dict(v: Verdict) -> dict[str, Any]:
    return {"correct": v.correct, "verifier": v.verifier, "version": v.version, "reason": v.reason,
            "extracted": v.extracted, "first_wrong_step": v.first_wrong_step}


def _critic_dict(c: prompts.CriticVerdict | None) -> dict[str, Any] | None:
    if c is None:
        return None
    return {"correct": c.correct, "first_wrong_step": c.first_wrong_step, "critique": c.critique, "score": c.score}


def _trace_row(p: Problem, a, cfg: RoundConfig, model: dict, pass_rate: float, config_hash: str) -> dict[str, Any]:
    s = cfg.strategy.sampling
    return {
        "id": records.trace_id(p.id, a.text), "problem_id": p.id, "source": p.source, "task": p.task,
        "difficulty": p.difficulty, "question": p.question,
        "messages": cfg.prompt.solver_messages(p.question) + [{"role": "assistant", "content": a.text}],
        "reasoning": prompts.reasoning_of(a.text), "answer": a.verdict.extracted, "gold": p.answer,
        "verdict": _verdict_dict(a.verdict), "critic": _critic_dict(a.critic), "revision": a.revision,
        "strategy": "revise" if cfg.strategy.revisions else "sample", "model": model,
        "sampling": {"temperature": s.temperature, "top_p": s.top_p, "max_tokens": s.max_tokens, "seed": a.seed},
        "round": cfg.round, "tokens": a.tokens, "finish_reason": a.finish_reason,
        "problem_pass_rate": pass_rate, "config_hash": config_hash, "reject_reason": a.reject_reason,
    }


def _critic_row(p: Problem, a, cfg: RoundConfig, model: dict, config_hash: str) -> dict[str, Any]:
    label, step = a.verdict.correct, a.verdict.first_wrong_step
    target = prompts.format_critic(label, step)
    return {
        "id": records.trace_id(p.id, "critic\n" + a.text), "problem_id": p.id, "task": p.task,
        "messages": cfg.prompt.critic_messages(p.question, a.text) + [{"role": "assistant", "content": target}],
        "trace": a.text, "critic_output": a.critic_text, "critic": _critic_dict(a.critic), "label_correct": label,
        "label_first_wrong_step": step, "agree": a.critic.correct == label, "model": model, "round": cfg.round,
        "config_hash": config_hash,
    }


def _rollout(cfg: RoundConfig, h: Handles) -> products.Rollout | None:
    """Monte-Carlo PRM rollouts through the solver pool, when configured (they need its tokenizer)."""
    if not (cfg.prm.enabled and cfg.prm.rollouts):
        return None
    from selfplay.engines.resolve import load_tokenizer, resolve_model

    tokenizer = load_tokenizer(resolve_model(cfg.solver.engine.model, cfg.solver.engine.revision).path)
    return products.engine_rollout(h.solve, h.verify, tokenizer, cfg.prm, cfg.prompt)


def _critic_pool(cfg: RoundConfig, solver: EnginePool) -> EnginePool | None:
    if not cfg.critic.enabled:
        return None
    return solver if cfg.critic.share_solver else EnginePool(cfg.critic.model, "critic")


def _manifest_meta(cfg: RoundConfig, solver: EnginePool, critic: EnginePool | None) -> dict[str, Any]:
    import verifiers

    return {"config": as_dict(cfg), "config_hash": cfg.hash(), "models": model_identities(solver, critic),
            "verifiers": {t: verifiers.get(t).version for t in verifiers.tasks()}}


def _total(source: SourceConfig) -> int | None:
    if source.kind == "tasks":
        total = sum(t.n for t in source.tasks)
        return min(total, source.limit) if source.limit is not None else total
    return source.limit


def start_ray(cluster: ClusterConfig) -> None:
    """Connect to `cluster.address`, or start a local Ray; nothing when Ray is already up."""
    import ray

    if ray.is_initialized():
        return
    os.environ.setdefault("RAY_AUTH_MODE", "disabled" if cluster.address is None else os.environ.get("RAY_AUTH_MODE", "token"))
    if cluster.address is None:
        # A local node's agent must register within 10 s by default; on a small machine under load
        # (2 cores running a test suite beside the flywheel) it took longer and the node never started.
        os.environ.setdefault("RAY_agent_register_timeout_ms", "300000")
    # Workers import selfplay from the driver's checkout; a job's runtime_env sets it on clusters.
    # A local Ray starts its dashboard (about 2 s; a cluster has its own): Ray Train's placement
    # group cleaner asks its state API whether the job's controller is alive, and without it warned
    # every second of every distillation.
    ray.init(address=cluster.address, num_cpus=cluster.num_cpus, include_dashboard=True,
             log_to_driver=True, runtime_env=None if cluster.address else {"env_vars": {"PYTHONPATH": str(Path(__file__).parents[1])}})
