"""The flywheel: `python -m selfplay.flywheel` (conf/flywheel.yaml; the demo: `flywheel=demo`).

    start model (bootstrap) ─► round k: generate ─► distil ─► evaluate ─► checkpoint k = solver of k+1

Two arms run the same rounds on the same problems. The verified arm distils only traces the
verifiers accepted; the control arm distils every trace it sampled, unverified. After the
bootstrap no reference solution enters a round: each checkpoint learns from its own traces (the
newest round plus replay of its own earlier rounds). A curriculum moves the round's difficulty up
once the verified arm's held-out pass@1 there reaches `raise_at`, so rounds work where the model is
between failing and solving. Or the rounds draw from a user's `source` (a file, a dataset dir) and
are evaluated on `heldout` (another source, or a share of this one split by problem id:
selfplay.splits), whose pass@1 over its problems is the headline.

Every step writes its output atomically (round shards via their manifest, model directories by
rename, eval reports by rename) and is recorded in <out_dir>/flywheel.json, so a killed flywheel
rerun with the same command resumes at the round and step where it stopped.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable

from selfplay.config import ConfigError
from selfplay.storage import copy_dir, write_json
from selfplay.distill import distill, keep_checkpoint
from selfplay.evaluate import evaluate
from selfplay.prompts import PromptConfig
from selfplay.flywheel_config import CurriculumConfig, FlywheelConfig, FlywheelEvaluate, flywheel_config  # noqa: F401 (the verb's API)

log = logging.getLogger("selfplay.flywheel")

STATE = "flywheel.json"
ARMS = ("verified", "control")
STEPS = ("generate", "distill", "evaluate")
PLACEMENT = ("out_dir", "cluster", "evaluate_on")
"""Config fields that say where a run lives and runs, not what it computes: left out of its hash."""
SOLVER_PLACEMENT = ("replicas", "num_cpus", "num_gpus", "resources", "max_outstanding_requests",
                    "max_outstanding_tokens", "max_restarts")


# ------------------------------------------------------------------------------ state


class Flywheel:
    """One flywheel run: its config, its state file, and the steps that advance it."""

    def __init__(self, cfg: FlywheelConfig, log_fn: Callable[[str], None] = log.info):
        self.cfg = cfg
        self.log = log_fn
        self.engines: tuple[str, Any] | None = None
        """(model, EnginePool): the engine actors that evaluated `model` (evaluate_on=solver), kept
        for the next round, which generates on that checkpoint."""
        self.out = Path(cfg.out_dir)
        self.path = self.out / STATE
        # Everything but the round count: a finished flywheel can be extended by more rounds.
        # A curriculum run leaves out the source fields (unset there), so a state file written
        # before they existed still resumes.
        unset = ("source", "heldout", "problems_per_round") if cfg.source is None else ()
        decisive = {k: v for k, v in asdict(cfg).items() if k != "rounds" and k not in unset}
        if cfg.prompt == PromptConfig():  # nor the prompt and test-time fields, at their defaults
            del decisive["prompt"]
        if cfg.evaluate.test_time == FlywheelEvaluate().test_time:
            del decisive["evaluate"]["test_time"]
        if cfg.judge_share == 1.0:
            del decisive["judge_share"]
        if cfg.evaluate_on == "driver":
            del decisive["evaluate_on"]
        # Where a run lives and runs is not what it computes: a moved out_dir or checkout, another
        # Ray cluster or more engine replicas resume the same run. State files written while those
        # were in the hash (`legacy_hash`) still resume.
        self.legacy_hash = _digest(decisive)
        for key in PLACEMENT:
            decisive.pop(key, None)
        del decisive["bootstrap"]["out_dir"]
        for key in SOLVER_PLACEMENT:
            decisive["solver"].pop(key, None)
        self.config_hash = _digest(decisive)
        self.state = self._load()

    def _load(self) -> dict[str, Any]:
        if not self.path.exists():
            return {"config_hash": self.config_hash, "config": asdict(self.cfg), "start_model": None,
                    "difficulty": {}, "done": {}, "rounds": [], "control": []}
        state = json.loads(self.path.read_text())
        if state.get("config_hash") == self.legacy_hash:
            state["config_hash"] = self.config_hash
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
        self.split()  # before any model: a file that cannot be a source fails now
        start = self.start_model()
        arms = ARMS if self.cfg.control else ARMS[:1]
        ray_was_up = _ray_is_up()
        try:
            self.evaluate_start(start)
            # One arm's rounds after the other: each evaluation's engine actors then generate the
            # arm's next round. The control's round k needs only what the verified arm's round k
            # and evaluations before it decided (its difficulty, its step count).
            for arm in arms:
                for k in range(1, self.cfg.rounds + 1):
                    self.round(arm, k, self.difficulty(k), start)
        finally:
            self.release_engines()
            if not ray_was_up:  # a Ray the caller started (a test session, a job) is theirs to stop
                _stop_ray()
        self.state["seconds_this_run"] = round(time.perf_counter() - started, 2)
        self.save()
        return self.state

    def split(self) -> None:
        """With a source: the held-out split, once (its ids files and its record in flywheel.json)."""
        if self.cfg.source is None or self.state.get("split"):
            return
        from selfplay.splits import DRAW_RULE, split_source

        self.state["split"] = split_source(self.cfg.source, self.cfg.heldout.source(self.cfg.source),
                                           self.cfg.heldout.share, self.cfg.problems_dir)
        self.state["split"]["draw"] = {"problems_per_round": self.cfg.problems_per_round,
                                       "rule": DRAW_RULE if self.cfg.problems_per_round else "every train problem"}
        self.save()
        train, held = self.state["split"]["train"], self.state["split"]["heldout"]
        self.log(f"split: {train['problems']} train problems, {held['problems']} held out ({held['source']})")

    def start_model(self) -> str:
        if self.state["start_model"]:
            return self.state["start_model"]
        if self.cfg.start_model:
            model = self.cfg.start_model
        else:
            from selfplay.bootstrap import run

            started = time.perf_counter()
            bootstrap = self.cfg.bootstrap
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
        report = self._evaluate(model, self.out / "eval-round-0.json", curves=True)
        entry = _entry(0, report, None, None, time.perf_counter() - started)
        self.state["rounds"], self.state["control"] = [entry], [dict(entry)]
        self.mark("round-0/evaluate", time.perf_counter() - started)
        self.log(f"round 0 (start model): hard pass@1 {entry['pass_at_1']}")

    def difficulty(self, k: int) -> int | None:
        """Round k's difficulty: the previous one, raised once the verified arm passes `raise_at`
        there (None on a source: no curriculum)."""
        if self.cfg.source is not None:
            return None
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

                if self.cfg.source is not None and self.cfg.problems_per_round:
                    from selfplay.splits import draw

                    draw(self.cfg.problems_dir, k, self.cfg.problems_per_round, self.cfg.seed)
                engines = self.take_engines(model)
                try:
                    run_round(self.cfg.round_config(arm, k, difficulty, model), solver=engines)
                finally:
                    if engines is not None:
                        engines.close()
            self.mark(f"{prefix}/generate", time.perf_counter() - t0)
        t1 = time.perf_counter()
        if not self.done(f"{prefix}/distill"):
            self.release_engines()  # training gets the devices the engine actors held
            steps = self._matched_steps(arm, k)
            dcfg = self.cfg.distill_config(arm, k, start, steps)
            if steps != 0:  # distill carries the checkpoint over itself when the round has nothing to learn
                distill(dcfg, log_fn=self.log)
            else:
                why = "the verified arm trained no step"
                keep_checkpoint(dcfg, why)
                self.log(f"{arm} round {k}: nothing to distil ({why}); the checkpoint carries over")
            self.mark(f"{prefix}/distill", time.perf_counter() - t1)
        t2 = time.perf_counter()
        report = self._evaluate(str(self.cfg.model_dir(arm, k)), self.cfg.arm_dir(arm) / "eval" / f"round-{k}.json",
                                curves=arm == "verified" and k == self.cfg.rounds)
        seconds = sum(self.state["done"][f"{prefix}/{s}"] for s in STEPS[:2]) + time.perf_counter() - t2
        entry = _entry(k, report, self._round_numbers(arm, k), difficulty, seconds)
        rounds = self.state["rounds" if arm == "verified" else "control"]
        del rounds[k:]
        rounds.append(entry)
        self.mark(f"{prefix}/evaluate", time.perf_counter() - t2)
        self.log(f"{arm} round {k}: hard pass@1 {entry['pass_at_1']} (verified rate {entry['verified_rate']}, "
                 f"{entry['accepted']} traces trained)")

    def _matched_steps(self, arm: str, k: int) -> int | None:
        """The control's steps in round k when it matches the verified arm's (control_steps=verified);
        0 when the verified arm had nothing to distil, so neither arm trains."""
        if arm == ARMS[0] or self.cfg.control_steps != "verified":
            return None
        return json.loads((self.cfg.model_dir(ARMS[0], k) / "distill.json").read_text())["steps"]

    def _evaluate(self, model: str, path: Path, curves: bool) -> dict[str, Any]:
        if not path.exists():  # written atomically: present means finished
            cfg = self.cfg.eval_config(model, str(path), curves)
            if self.cfg.evaluate_on == "driver":  # evaluate loads its own engine in this process
                evaluate(cfg)
            else:
                from selfplay.actors import PooledEngine

                evaluate(cfg, engine=PooledEngine(self.start_engines(model)))
        # Read back from the file either way: the state then holds what flywheel.json holds (the
        # test-time curves' k keys as strings), whether the report was just made or resumed.
        return json.loads(path.read_text())

    # -------------------------------------------------------------------------- engine actors

    def start_engines(self, model: str):
        """Engine actors on `model`, placed as the solver's, held until the next round takes them."""
        from selfplay.actors import EnginePool
        from selfplay.pipeline import start_ray

        self.release_engines()
        start_ray(self.cfg.cluster)
        self.engines = (model, EnginePool(self.cfg.eval_solver(model), "solver"))
        return self.engines[1]

    def take_engines(self, model: str):
        """The held engine actors when they serve `model` (the caller closes them), else None."""
        if self.engines is not None and self.engines[0] == model:
            pool, self.engines = self.engines[1], None
            return pool
        self.release_engines()
        return None

    def release_engines(self) -> None:
        if self.engines is not None:
            pool, self.engines = self.engines[1], None
            pool.close()

    def _round_numbers(self, arm: str, k: int) -> dict[str, Any]:
        from selfplay.shards import load_rows

        rows = load_rows(str(self.cfg.arm_dir(arm) / f"round-{k}"), "problems").to_pylist()
        report = json.loads((self.cfg.model_dir(arm, k) / "distill.json").read_text())
        samples = sum(r["samples"] for r in rows)
        verified = sum(r["verified"] for r in rows)
        round_dir = str(self.cfg.arm_dir(arm) / f"round-{k}")
        # Rows are distinct traces (the round drops repeats): the control trains on all of them.
        distinct = sum(load_rows(round_dir, kind, ["id"]).num_rows for kind in ("sft", "rejected"))
        from selfplay.stats import revise_vs_resample

        return {"problems": len(rows), "traces": samples, "verified": verified,
                "revise_vs_resample": revise_vs_resample(rows),
                "accepted": sum(r["accepted"] for r in rows) if arm == "verified" else distinct,
                "verified_rate": round(verified / samples, 4) if samples else 0.0,
                "tokens": sum(r["tokens"] for r in rows), "train_examples": report["examples"],
                "train_tokens": report["tokens"], "final_loss": report["final_loss"],
                **({"skipped": report["reason"]} if report["role"] == "unchanged" else {})}


def _digest(decisive: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(decisive, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _entry(k: int, report: dict[str, Any], numbers: dict[str, Any] | None, difficulty: int | None,
           seconds: float) -> dict[str, Any]:
    """One row of flywheel.json's `rounds`: held-out numbers plus what the round generated."""
    hard = report["bands"]["hard"]
    by_difficulty = {d: cell["pass@1"] for fam in hard["cells"].values() for d, cell in fam.items()}
    numbers = numbers or {"accepted": 0, "verified_rate": None, "tokens": 0, "traces": 0}
    return {"round": k, "difficulty": difficulty, "pass_at_1": hard["pass_at_1"], "pass_at_k": hard.get("pass_at_k"),
            "pass_at_1_by_difficulty": by_difficulty,
            "bands": {name: b["pass_at_1"] for name, b in report["bands"].items()},
            "critic_accuracy": (report.get("critic") or {}).get("accuracy"),
            "critic_auc": (report.get("critic") or {}).get("auc"), "seconds": round(seconds, 2),
            **({"test_time": report["test_time"]} if report.get("test_time") else {})} | numbers


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


def _run_and_print(config: FlywheelConfig) -> None:
    from selfplay.report import round_table

    state = run_flywheel(config)
    print(round_table(state))
    print(f"wrote {Path(config.out_dir) / STATE}, report.md and report.png")


if __name__ == "__main__":
    from selfplay import cli

    cli.main("flywheel", flywheel_config, _run_and_print)
