"""The flywheel: `python -m selfplay.flywheel` (conf/flywheel.yaml; the demo: `flywheel=demo`).

    start model (bootstrap) ─► round k: generate ─► distil ─► evaluate ─► checkpoint k = solver of k+1

Two arms run the same rounds on the same problems. The verified arm distils only traces the
verifiers accepted; the control arm distils every trace it sampled, unverified. After the
bootstrap no reference solution enters a round: each checkpoint learns from its own traces (the
newest round plus replay of its own earlier rounds). A curriculum moves the round's difficulty up
once the verified arm's held-out pass@1 there reaches `raise_at`, so rounds work where the model is
between failing and solving.

Every step writes its output atomically (round shards via their manifest, model directories by
rename, eval reports by rename) and is recorded in <out_dir>/flywheel.json, so a killed flywheel
rerun with the same command resumes at the round and step where it stopped.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

from selfplay.config import ConfigError, typed
from selfplay.storage import copy_dir, write_json
from selfplay.distill import DistillConfig, distill, gather, keep_checkpoint
from selfplay.evaluate import EvaluateConfig, evaluate

log = logging.getLogger("selfplay.flywheel")

STATE = "flywheel.json"
ARMS = ("verified", "control")
STEPS = ("generate", "distill", "evaluate")


@dataclass(frozen=True)
class CurriculumConfig:
    family: str = "addition"
    """The task family the rounds draw from (train split)."""
    start: int = 4
    """Difficulty of round 1 (one past the bootstrap's band)."""
    max_difficulty: int = 8
    """The curriculum never goes past this."""
    raise_at: float = 0.5
    """Move to the next difficulty once the verified arm's held-out greedy pass@1 at the current
    one reaches this (from the evaluation after each round)."""
    problems: int = 96
    """Fresh train-split problems per round at the round's difficulty."""
    review_problems: int = 0
    """Also this many problems at each easier difficulty (from `review_from`): the model's own
    verified traces there are its replay of what it already solves."""
    review_from: int = 1
    """Lowest difficulty reviewed."""
    review: dict[str, list[int]] = field(default_factory=dict)
    """Cells of other families reviewed every round too ({family: [difficulties]}, `review_problems`
    each): the model's own verified traces there keep what it already solves from fading."""

    def __post_init__(self):
        from selfplay.tasks import family

        fam = family(self.family)
        fam.check_difficulty(self.start)
        fam.check_difficulty(self.max_difficulty)
        fam.check_difficulty(self.review_from)
        if self.max_difficulty < self.start:
            raise ValueError(f"curriculum.max_difficulty ({self.max_difficulty}) is below start ({self.start})")
        if not 0 < self.raise_at <= 1 or self.problems < 1 or self.review_problems < 0:
            raise ValueError("curriculum: raise_at must be in (0, 1], problems >= 1, review_problems >= 0")
        if self.review:
            from selfplay.tasks import check_difficulties

            object.__setattr__(self, "review", check_difficulties("curriculum.review", self.review))
            if self.family in self.review:
                raise ValueError(f"curriculum.review: {self.family} is the curriculum's own family; "
                                 "its easier difficulties are reviewed from `review_from`")

    def bands(self) -> dict[str, dict[str, list[int]]]:
        """Held-out bands when none are configured: the three difficulties from `start` up are
        "hard", the reviewed ones below it "easy"."""
        hard = list(range(self.start, min(self.start + 2, self.max_difficulty) + 1))
        easy = list(range(self.review_from, self.start))
        return {"hard": {self.family: hard}} | ({"easy": {self.family: easy}} if easy else {})

    def tasks(self, difficulty: int) -> list[dict[str, Any]]:
        cells = [(fam, d) for fam, ds in self.review.items() for d in ds]
        cells += [(self.family, d) for d in range(self.review_from, difficulty)]
        review = [{"family": fam, "n": self.review_problems, "difficulty": d} for fam, d in cells if self.review_problems]
        return review + [{"family": self.family, "n": self.problems, "difficulty": difficulty}]


@dataclass(frozen=True)
class FlywheelConfig:
    out_dir: str = "out/flywheel"
    """Everything goes here: <arm>/round-<k>/ shards, <arm>/models/round-<k>/, <arm>/eval/, flywheel.json, report."""
    rounds: int = 3
    """Flywheel rounds after the start model."""
    start_model: str | None = None
    """The round-1 solver and critic; None = train it with `bootstrap` (cached)."""
    bootstrap: dict[str, Any] = field(default_factory=dict)
    """selfplay.bootstrap.BootstrapConfig fields, used when start_model is None."""
    control: bool = True
    """Also run the control arm: the same rounds distilling every trace, unverified."""
    seed: int = 0
    """Seeds the rounds' problem draws (round k draws with seed + k)."""
    distill_from: str = "last"
    """Each round's base model: "last" fine-tunes the previous round's checkpoint on the newest
    round (plus `distill.replay` of older ones); "start" fine-tunes the start model afresh on every
    round's data so far (ReST-EM's choice: errors of one round's fine-tune do not compound)."""
    curriculum: CurriculumConfig = field(default_factory=CurriculumConfig)
    solver: dict[str, Any] = field(default_factory=lambda: {"engine": {"engine": "hf", "device": "auto"}})
    """selfplay.actors.ModelConfig fields; engine.model is set to each round's checkpoint."""
    strategy: dict[str, Any] = field(default_factory=lambda: {"k": 4, "wave": 4, "max_samples": 4, "revisions": 0,
                                                              "unsolvable_after": 4})
    """selfplay.strategies.StrategyConfig fields. k = max_samples keeps every verified trace, so the
    two arms see the same samples and differ only in the filter."""
    with_critic: bool = True
    """Judge every trace with the solver's own model (critic prompt): critic rows train the critic.
    (Not `critic`: that name is a config group of the generate app, so Hydra would refuse
    `critic=false` on the command line.)"""
    cluster: dict[str, Any] = field(default_factory=dict)
    """selfplay.pipeline.ClusterConfig fields (a local Ray by default, reused across rounds)."""
    verifier: dict[str, Any] = field(default_factory=dict)
    """selfplay.pipeline.VerifierConfig fields."""
    distill: dict[str, Any] = field(default_factory=dict)
    """selfplay.distill.DistillConfig fields other than base_model, rounds, out_dir and solver_rows."""
    evaluate: dict[str, Any] = field(default_factory=dict)
    """selfplay.evaluate.EvaluateConfig fields other than model and out; its "hard" band is the
    headline pass@1. bands=None derives them from the curriculum (CurriculumConfig.bands)."""

    def __post_init__(self):
        if self.rounds < 1:
            raise ValueError(f"rounds must be >= 1, got {self.rounds}")
        if self.distill_from not in ("last", "start"):
            raise ValueError(f"distill_from must be 'last' or 'start', got {self.distill_from!r}")
        if not str(self.out_dir).strip():
            raise ValueError("out_dir must be a directory path")
        for name, keys in (("distill", ("base_model", "rounds", "out_dir", "solver_rows")), ("evaluate", ("model", "out"))):
            clash = set(getattr(self, name)) & set(keys)
            if clash:
                raise ValueError(f"{name}.{sorted(clash)[0]} is set by the flywheel per round; remove it")
        # Build every per-round config once now, so a typo fails at start, not rounds later.
        self.round_config("verified", 1, 4, "model")
        self.distill_config("verified", 1, "model")
        if "hard" not in self.eval_config("model", "eval.json").bands:
            raise ValueError("evaluate.bands needs a 'hard' band: the flywheel's headline pass@1")
        if self.start_model is None:
            from selfplay.bootstrap import BootstrapConfig

            BootstrapConfig.from_dict(self.bootstrap, "flywheel.bootstrap")

    def arm_dir(self, arm: str) -> Path:
        return Path(self.out_dir) / arm

    def model_dir(self, arm: str, k: int) -> Path:
        return self.arm_dir(arm) / "models" / f"round-{k}"

    def round_config(self, arm: str, k: int, difficulty: int, model: str):
        from selfplay.pipeline import RoundConfig

        plain = {
            "round": k, "solver": _merge(self.solver, {"engine": {"model": model}}),
            "source": {"kind": "tasks", "split": "train", "seed": self.seed + k, "tasks": self.curriculum.tasks(difficulty)},
            "critic": {"enabled": self.with_critic, "share_solver": True},
            "strategy": self.strategy, "verifier": self.verifier, "cluster": self.cluster,
            "output": {"out_dir": str(self.arm_dir(arm))}, "progress_every_s": 10.0,
        }
        return typed(RoundConfig, plain, "flywheel")

    def distill_config(self, arm: str, k: int, start: str) -> DistillConfig:
        base = str(self.model_dir(arm, k - 1)) if k > 1 and self.distill_from == "last" else start
        plain = self.distill | {
            "base_model": base, "out_dir": str(self.model_dir(arm, k)),
            "rounds": [str(self.arm_dir(arm) / f"round-{j}") for j in range(1, k + 1)],
            "solver_rows": "sft" if arm == "verified" else "all",
            # From the start model, every round's rows are the data (nothing was learnt before).
            **({"replay": float("inf")} if self.distill_from == "start" else {}),
            # The control arm learns nothing from the verifier, its critic included.
            "critic": self.distill.get("critic", "shared") if arm == "verified" and self.with_critic else "none",
        }
        return typed(DistillConfig, plain, "flywheel.distill")

    def eval_config(self, model: str, out: str) -> EvaluateConfig:
        settings = self.evaluate | {"model": model, "out": out}
        if settings.get("bands") is None:
            settings["bands"] = self.curriculum.bands()
        return typed(EvaluateConfig, settings, "flywheel.evaluate")


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        out[key] = _merge(out.get(key) or {}, value) if isinstance(value, dict) else value
    return out


# ------------------------------------------------------------------------------ state


class Flywheel:
    """One flywheel run: its config, its state file, and the steps that advance it."""

    def __init__(self, cfg: FlywheelConfig, log_fn: Callable[[str], None] = log.info):
        self.cfg = cfg
        self.log = log_fn
        self.out = Path(cfg.out_dir)
        self.path = self.out / STATE
        # Everything but the round count: a finished flywheel can be extended by more rounds.
        decisive = {k: v for k, v in asdict(cfg).items() if k != "rounds"}
        self.config_hash = hashlib.sha256(json.dumps(decisive, sort_keys=True, default=str).encode()).hexdigest()[:16]
        self.state = self._load()

    def _load(self) -> dict[str, Any]:
        if not self.path.exists():
            return {"config_hash": self.config_hash, "config": asdict(self.cfg), "start_model": None,
                    "difficulty": {}, "done": {}, "rounds": [], "control": []}
        state = json.loads(self.path.read_text())
        if state.get("config_hash") != self.config_hash:
            raise ConfigError(f"{self.path} was written by a different flywheel config; use another out_dir "
                              "or delete it to start over")
        return state

    def save(self) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        write_json(self.path, self.state)

    def done(self, key: str) -> bool:
        return key in self.state["done"]

    def mark(self, key: str, seconds: float) -> None:
        self.state["done"][key] = round(seconds, 2)
        self.save()

    # -------------------------------------------------------------------------- run

    def run(self) -> dict[str, Any]:
        started = time.perf_counter()
        start = self.start_model()
        self.evaluate_start(start)
        arms = ARMS if self.cfg.control else ARMS[:1]
        ray_was_up = _ray_is_up()
        try:
            for k in range(1, self.cfg.rounds + 1):
                difficulty = self.difficulty(k)
                for arm in arms:
                    self.round(arm, k, difficulty, start)
        finally:
            if not ray_was_up:  # a Ray the caller started (a test session, a job) is theirs to stop
                _stop_ray()
        self.state["seconds_this_run"] = round(time.perf_counter() - started, 2)
        self.save()
        return self.state

    def start_model(self) -> str:
        if self.state["start_model"]:
            return self.state["start_model"]
        if self.cfg.start_model:
            model = self.cfg.start_model
        else:
            from selfplay.bootstrap import BootstrapConfig, run

            started = time.perf_counter()
            bootstrap = BootstrapConfig.from_dict(self.cfg.bootstrap, "flywheel.bootstrap")
            self.log(f"bootstrap: {bootstrap.out_dir} (cached when it is up to date)")
            run(bootstrap)
            model = bootstrap.out_dir
            self.state["bootstrap_seconds"] = round(time.perf_counter() - started, 2)
        self.state["start_model"] = model
        self.save()
        return model

    def evaluate_start(self, model: str) -> None:
        if self.done("round-0/evaluate"):
            return
        started = time.perf_counter()
        report = self._evaluate(model, self.out / "eval-round-0.json")
        entry = _entry(0, report, None, None, time.perf_counter() - started)
        self.state["rounds"], self.state["control"] = [entry], [dict(entry)]
        self.mark("round-0/evaluate", time.perf_counter() - started)
        self.log(f"round 0 (start model): hard pass@1 {entry['pass_at_1']}")

    def difficulty(self, k: int) -> int:
        """Round k's difficulty: the previous one, raised once the verified arm passes `raise_at` there."""
        key = str(k)
        if key not in self.state["difficulty"]:
            c = self.cfg.curriculum
            if k == 1:
                d = c.start
            else:
                d = self.state["difficulty"][str(k - 1)]
                if self._frontier_pass_rate(k - 1, d) >= c.raise_at:
                    d = min(d + 1, c.max_difficulty)
            self.state["difficulty"][key] = d
            self.save()
        return self.state["difficulty"][key]

    def _frontier_pass_rate(self, k: int, difficulty: int) -> float:
        """The verified arm's round-k checkpoint at `difficulty`: held-out greedy pass@1 where an
        evaluated band has that cell, else the share of its round's sampled traces that verified."""
        report = json.loads((self.cfg.arm_dir("verified") / "eval" / f"round-{k}.json").read_text())
        cells = [fams[self.cfg.curriculum.family][str(difficulty)] for b in report["bands"].values()
                 for fams in [b["cells"]] if str(difficulty) in fams.get(self.cfg.curriculum.family, {})]
        if cells:
            return cells[0]["pass@1"]
        from selfplay.shards import load_rows

        rows = [r for r in load_rows(str(self.cfg.arm_dir("verified") / f"round-{k}"), "problems").to_pylist()
                if r["difficulty"] == difficulty]
        return sum(r["verified"] for r in rows) / max(1, sum(r["samples"] for r in rows))

    def round(self, arm: str, k: int, difficulty: int, start: str) -> None:
        prefix = f"{arm}/round-{k}"
        if self.done(f"{prefix}/evaluate"):
            return
        model = str(self.cfg.model_dir(arm, k - 1)) if k > 1 else start
        self.log(f"{arm} round {k}: difficulty {difficulty}, solver {model}")
        t0 = time.perf_counter()
        if not self.done(f"{prefix}/generate"):
            if k == 1 and arm != ARMS[0] and self.done(f"{ARMS[0]}/round-1/generate"):
                # Round 1 is the same run in both arms (same start model, problems and seeds; only
                # the output directory differs), so the control takes a copy instead of redoing it.
                copy_dir(self.cfg.arm_dir(ARMS[0]) / "round-1", self.cfg.arm_dir(arm) / "round-1")
            else:
                from selfplay.pipeline import run_round

                run_round(self.cfg.round_config(arm, k, difficulty, model))
            self.mark(f"{prefix}/generate", time.perf_counter() - t0)
        t1 = time.perf_counter()
        if not self.done(f"{prefix}/distill"):
            dcfg = self.cfg.distill_config(arm, k, start)
            if any(gather(dcfg).values()):
                distill(dcfg, log_fn=self.log)
            else:
                keep_checkpoint(dcfg)
                self.log(f"{arm} round {k}: nothing to distil (no usable trace); the checkpoint carries over")
            self.mark(f"{prefix}/distill", time.perf_counter() - t1)
        t2 = time.perf_counter()
        report = self._evaluate(str(self.cfg.model_dir(arm, k)), self.cfg.arm_dir(arm) / "eval" / f"round-{k}.json")
        seconds = sum(self.state["done"][f"{prefix}/{s}"] for s in STEPS[:2]) + time.perf_counter() - t2
        entry = _entry(k, report, self._round_numbers(arm, k), difficulty, seconds)
        rounds = self.state["rounds" if arm == "verified" else "control"]
        del rounds[k:]
        rounds.append(entry)
        self.mark(f"{prefix}/evaluate", time.perf_counter() - t2)
        self.log(f"{arm} round {k}: hard pass@1 {entry['pass_at_1']} (verified rate {entry['verified_rate']}, "
                 f"{entry['accepted']} traces trained)")

    def _evaluate(self, model: str, path: Path) -> dict[str, Any]:
        if path.exists():  # written atomically: present means finished
            return json.loads(path.read_text())
        return evaluate(self.cfg.eval_config(model, str(path)))

    def _round_numbers(self, arm: str, k: int) -> dict[str, Any]:
        from selfplay.shards import load_rows

        rows = load_rows(str(self.cfg.arm_dir(arm) / f"round-{k}"), "problems").to_pylist()
        report = json.loads((self.cfg.model_dir(arm, k) / "distill.json").read_text())
        samples = sum(r["samples"] for r in rows)
        verified = sum(r["verified"] for r in rows)
        round_dir = str(self.cfg.arm_dir(arm) / f"round-{k}")
        # Rows are distinct traces (the round drops repeats): the control trains on all of them.
        distinct = sum(load_rows(round_dir, kind, ["id"]).num_rows for kind in ("sft", "rejected"))
        return {"problems": len(rows), "traces": samples, "verified": verified,
                "accepted": sum(r["accepted"] for r in rows) if arm == "verified" else distinct,
                "verified_rate": round(verified / samples, 4) if samples else 0.0,
                "tokens": sum(r["tokens"] for r in rows), "train_examples": report["examples"],
                "train_tokens": report["tokens"], "final_loss": report["final_loss"]}


def _entry(k: int, report: dict[str, Any], numbers: dict[str, Any] | None, difficulty: int | None,
           seconds: float) -> dict[str, Any]:
    """One row of flywheel.json's `rounds`: held-out numbers plus what the round generated."""
    hard = report["bands"]["hard"]
    by_difficulty = {d: cell["pass@1"] for fam in hard["cells"].values() for d, cell in fam.items()}
    numbers = numbers or {"accepted": 0, "verified_rate": None, "tokens": 0, "traces": 0}
    return {"round": k, "difficulty": difficulty, "pass_at_1": hard["pass_at_1"], "pass_at_k": hard.get("pass_at_k"),
            "pass_at_1_by_difficulty": by_difficulty,
            "bands": {name: b["pass_at_1"] for name, b in report["bands"].items()},
            "critic_accuracy": (report.get("critic") or {}).get("accuracy"), "seconds": round(seconds, 2)} | numbers


def _ray_is_up() -> bool:
    import ray

    return ray.is_initialized()


def _stop_ray() -> None:
    import ray

    if ray.is_initialized():
        ray.shutdown()


def run_flywheel(cfg: FlywheelConfig, log_fn: Callable[[str], None] = log.info) -> dict[str, Any]:
    """Run (or resume) the flywheel; writes flywheel.json, report.md and report.png."""
    from selfplay.report import write_report

    state = Flywheel(cfg, log_fn).run()
    write_report(state, Path(cfg.out_dir))
    return state


def flywheel_config(cfg) -> FlywheelConfig:
    """A composed Hydra config (or a plain mapping) as a typed FlywheelConfig; ConfigError names the bad key."""
    from selfplay.cli import plain

    data = plain(cfg)
    data.pop("flywheel", None)  # the preset group itself, merged into the top level
    return typed(FlywheelConfig, data, "flywheel")


def _run_and_print(config: FlywheelConfig) -> None:
    from selfplay.report import round_table

    state = run_flywheel(config)
    print(round_table(state))
    print(f"wrote {Path(config.out_dir) / STATE}, report.md and report.png")


if __name__ == "__main__":
    from selfplay import cli

    cli.main("flywheel", flywheel_config, _run_and_print)
