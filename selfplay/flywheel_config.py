"""The flywheel's typed configuration (conf/flywheel.yaml; the demo: `flywheel=demo`).

Each sub-config is the dataclass its step takes (the round's StrategyConfig, ClusterConfig, ...),
or that dataclass less the fields the flywheel sets per round (a `variant`): a typo fails at start
with its path and a did-you-mean. Defaults live in the dataclasses; where the flywheel's choice
differs (its solver runs hf, its strategy keeps every verified trace), the field's default here
says so, and a preset changes it key by key.
"""

from __future__ import annotations

import typing
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from selfplay.actors import ModelConfig
from selfplay.bootstrap import BootstrapConfig
from selfplay.config import as_dict, typed, variant
from selfplay.distill import DistillConfig
from selfplay.engines import EngineConfig
from selfplay.evaluate import EvaluateConfig, TestTimeConfig
from selfplay.pipeline import ClusterConfig, RoundConfig, VerifierConfig
from selfplay.problems import SourceConfig
from selfplay.prompts import PromptConfig
from selfplay.strategies import SamplingConfig, StrategyConfig

PER_ROUND = "set by the flywheel per round"
FlywheelEngine = variant(EngineConfig, "FlywheelEngine", drop=("model",), set_by=PER_ROUND)
"""The solver's engine; its model is each round's checkpoint."""
FlywheelSolver = variant(ModelConfig, "FlywheelSolver", engine=(FlywheelEngine, FlywheelEngine(engine="hf")))
"""The solver's replicas and engine (hf by default: the tiny reference model runs on CPU)."""
FlywheelDistill = variant(DistillConfig, "FlywheelDistill", drop=("base_model", "rounds", "out_dir", "solver_rows"),
                          set_by=PER_ROUND, workers=(int, 1))
"""How each round distils (a Ray Train job on one worker by default: on a cluster the driver stays a
small CPU task); what and from where is the flywheel's (per arm and round)."""
FlywheelEvaluate = variant(EvaluateConfig, "FlywheelEvaluate", drop=("model", "out", "source", "prompt"),
                           set_by="set by the flywheel (per round; the held-out source from `heldout`, the prompts from `prompt`)",
                           bands=(typing.get_type_hints(EvaluateConfig)["bands"] | None, None),
                           test_time=(TestTimeConfig, TestTimeConfig(problems=50, bands=("hard",))))
"""How each checkpoint is evaluated; bands=None derives them from the curriculum; test-time curves
of the hard band only (the report's), on its first 50 problems per cell."""


@dataclass(frozen=True)
class HeldoutConfig:
    """The held-out problems of a flywheel on a `source`: another file or split, or a share of it."""

    path: str | None = None
    """A held-out file, directory or dataset dir, read as `source` is (its kind, layout and
    columns); None = source.path."""
    split: str | None = None
    """The split to read there (a dataset dir's "test"); None = source.split."""
    share: float = 0.2
    """With neither `path` nor `split`: this share of the source's problems, chosen by a hash of
    each problem id (selfplay.splits.SHARE_RULE), is held out and never trained on."""

    def __post_init__(self):
        if not 0 < self.share < 1:
            raise ValueError(f"share must be in (0, 1), got {self.share}")

    def source(self, train: SourceConfig) -> SourceConfig | None:
        """The held-out source; None when it is a share of `train`."""
        if self.path is None and self.split is None:
            return None
        return replace(train, path=self.path or train.path, split=self.split or train.split)


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
    bootstrap: BootstrapConfig = field(default_factory=BootstrapConfig)
    """The start model's training, used when start_model is None."""
    control: bool = True
    """Also run the control arm: the same rounds distilling every trace, unverified."""
    seed: int = 0
    """Seeds the rounds' problem draws (round k draws with seed + k)."""
    distill_from: str = "last"
    """Each round's base model: "last" fine-tunes the previous round's checkpoint on the newest
    round (plus `distill.replay` of older ones); "start" fine-tunes the start model afresh on every
    round's data so far (ReST-EM's choice: errors of one round's fine-tune do not compound)."""
    curriculum: CurriculumConfig = field(default_factory=CurriculumConfig)
    """Which problems each round draws, and when the difficulty moves up (without `source`)."""
    source: SourceConfig | None = None
    """Train problems from a file or dataset, as generate reads them (`source=gsm8k
    source.path=...`); None = the procedural curriculum. With a source the held-out problems come
    from `heldout` and there is no curriculum."""
    heldout: HeldoutConfig = field(default_factory=HeldoutConfig)
    """With `source`: the held-out problems, split from train by problem id and recorded in
    flywheel.json (`split`); their greedy pass@1 is the headline."""
    problems_per_round: int | None = None
    """With `source`: train problems per round, drawn afresh with seed + k (the same for both
    arms); None = every train problem every round."""
    solver: FlywheelSolver = FlywheelSolver()
    """The solver (and, with_critic, the critic); engine.model is set to each round's checkpoint."""
    strategy: StrategyConfig = StrategyConfig(max_samples=4, revisions=0, unsolvable_after=4,
                                              sampling=SamplingConfig(critic_max_tokens=32))
    """How each problem is sampled. k = max_samples keeps every verified trace, so the two arms see
    the same samples and differ only in the filter; no revisions."""
    prompt: PromptConfig = field(default_factory=PromptConfig)
    """The prompts the solver and critic see in every round and evaluation (selfplay.prompts)."""
    with_critic: bool = True
    """Judge every trace of the verified arm with the solver's own model (critic prompt): critic
    rows train the critic.
    (Not `critic`: that name is a config group of the generate app, so Hydra would refuse
    `critic=false` on the command line.)"""
    judge_share: float = 1.0
    """Share of the verified arm's traces the critic judges (critic.judge_share): a round samples
    several times more traces than distillation takes critic rows (`distill.critic_ratio`)."""
    control_steps: str = "verified"
    """How many steps the control arm distils each round: "verified" = as many as the verified arm
    did in that round (equal training compute, so the arms differ only in what they learn from);
    "own" = its own `distill.epochs` over its (several times larger) unverified data."""
    cluster: ClusterConfig = field(default_factory=ClusterConfig)
    """Where the rounds run (a local Ray by default, reused across rounds)."""
    verifier: VerifierConfig = field(default_factory=VerifierConfig)
    """The verifier pool of each round."""
    distill: FlywheelDistill = field(default_factory=FlywheelDistill)
    """How each round distils; critic=shared applies to the verified arm only (the control arm
    learns nothing from the verifier, its critic included)."""
    evaluate: FlywheelEvaluate = field(default_factory=FlywheelEvaluate)
    """How each checkpoint is evaluated; its "hard" band is the headline pass@1. bands=None (the
    default) derives the bands from the curriculum (CurriculumConfig.bands)."""
    evaluate_on: str = "solver"
    """Where each checkpoint's evaluation runs its engine: "solver" = engine actors placed like a
    round's solver (solver.engine, replicas and resources: on a cluster, its GPU workers), started
    on the checkpoint and kept for the arm's next round, which generates on it, so the driver stays
    a small CPU task; "driver" = one engine in the flywheel's own process (evaluate.engine, device,
    dtype, batch_size)."""

    def __post_init__(self):
        if self.rounds < 1:
            raise ValueError(f"rounds must be >= 1, got {self.rounds}")
        if self.evaluate_on not in ("driver", "solver"):
            raise ValueError(f"evaluate_on must be 'driver' or 'solver', got {self.evaluate_on!r}")
        if self.control_steps not in ("verified", "own"):
            raise ValueError(f"control_steps must be 'verified' or 'own', got {self.control_steps!r}")
        if self.distill_from not in ("last", "start"):
            raise ValueError(f"distill_from must be 'last' or 'start', got {self.distill_from!r}")
        if not str(self.out_dir).strip():
            raise ValueError("out_dir must be a directory path")
        if self.source is None and (self.heldout != HeldoutConfig() or self.problems_per_round is not None):
            raise ValueError("heldout and problems_per_round are for a flywheel on a `source`; the curriculum "
                             "draws its own problems (curriculum.problems) and held-out bands (evaluate.bands)")
        if self.source is not None:
            if self.source.only_ids is not None:
                raise ValueError("source.only_ids is set by the flywheel (each round's draw); remove it")
            if self.evaluate.bands is not None:
                raise ValueError("evaluate.bands are procedural cells; a flywheel on a source is evaluated on `heldout`")
            if self.problems_per_round is not None and self.problems_per_round < 1:
                raise ValueError(f"problems_per_round must be >= 1, got {self.problems_per_round}")
        # Build every per-round config once now, so a bad value fails at start, not rounds later.
        self.round_config("verified", 1, 4, "model")
        self.distill_config("verified", 1, "model")
        if self.source is None and "hard" not in self.eval_config("model", "eval.json").bands:
            raise ValueError("evaluate.bands needs a 'hard' band: the flywheel's headline pass@1")

    def arm_dir(self, arm: str) -> Path:
        return Path(self.out_dir) / arm

    def model_dir(self, arm: str, k: int) -> Path:
        return self.arm_dir(arm) / "models" / f"round-{k}"

    @property
    def problems_dir(self) -> Path:
        """With `source`: the split's and each round's problem ids (selfplay.splits)."""
        return Path(self.out_dir) / "problems"

    def round_ids(self, k: int) -> Path:
        from selfplay.splits import TRAIN_IDS

        return self.problems_dir / (f"round-{k}.ids" if self.problems_per_round else TRAIN_IDS)

    def heldout_source(self) -> SourceConfig:
        """With `source`: where the held-out problems are read, only those the split holds out."""
        from selfplay.splits import HELDOUT_IDS

        return replace(self.heldout.source(self.source) or self.source, only_ids=str(self.problems_dir / HELDOUT_IDS))

    def round_config(self, arm: str, k: int, difficulty: int, model: str) -> RoundConfig:
        plain = {
            "round": k, "solver": self._solver_on(model),
            "source": {"kind": "tasks", "split": "train", "seed": self.seed + k, "tasks": self.curriculum.tasks(difficulty)}
            if self.source is None else as_dict(self.source) | {"only_ids": str(self.round_ids(k))},
            # The control distils no critic rows, so its rounds (after the shared round 1) skip
            # the judging: half of a round's generate time, for nothing the control uses.
            "critic": {"enabled": self.with_critic and arm == "verified", "share_solver": True,
                       "judge_share": self.judge_share}, "prompt": as_dict(self.prompt),
            "strategy": as_dict(self.strategy), "verifier": as_dict(self.verifier), "cluster": as_dict(self.cluster),
            "output": {"out_dir": str(self.arm_dir(arm))}, "progress_every_s": 10.0,
        }
        return typed(RoundConfig, plain, "flywheel")

    def distill_config(self, arm: str, k: int, start: str, steps: int | None = None) -> DistillConfig:
        """`steps`: exactly this many optimizer steps (the control matching the verified arm)."""
        base = str(self.model_dir(arm, k - 1)) if k > 1 and self.distill_from == "last" else start
        plain = as_dict(self.distill) | {
            "base_model": base, "out_dir": str(self.model_dir(arm, k)),
            "rounds": [str(self.arm_dir(arm) / f"round-{j}") for j in range(1, k + 1)],
            "solver_rows": "sft" if arm == "verified" else "all",
            # From the start model, every round's rows are the data (nothing was learnt before).
            **({"replay": float("inf")} if self.distill_from == "start" else {}),
            # The control arm learns nothing from the verifier, its critic included.
            "critic": self.distill.critic if arm == "verified" and self.with_critic else "none",
            **({"min_steps": steps, "max_steps": steps} if steps else {}),
        }
        return typed(DistillConfig, plain, "flywheel.distill")

    def eval_solver(self, model: str) -> ModelConfig:
        """The engine actors that evaluate `model` with evaluate_on=solver: the solver's, on it."""
        return typed(ModelConfig, self._solver_on(model), "flywheel.solver")

    def _solver_on(self, model: str) -> dict[str, Any]:
        """The solver's settings (plain) with its engine on `model`."""
        solver = as_dict(self.solver)
        solver["engine"]["model"] = model
        return solver

    def eval_config(self, model: str, out: str, curves: bool = True) -> EvaluateConfig:
        """`curves`: with the test-time curves (`evaluate.test_time`); the flywheel asks for them for
        the start model and the verified arm's last round only, the two its report draws."""
        settings = as_dict(self.evaluate) | {"model": model, "out": out, "prompt": as_dict(self.prompt)}
        if not curves:
            settings["test_time"]["samples"] = 0
        if self.source is not None:
            del settings["bands"]
            settings["source"] = as_dict(self.heldout_source())
        elif settings["bands"] is None:
            settings["bands"] = self.curriculum.bands()
        return typed(EvaluateConfig, settings, "flywheel.evaluate")


def flywheel_config(cfg) -> FlywheelConfig:
    """A composed Hydra config (or a plain mapping) as a typed FlywheelConfig; ConfigError names the bad key."""
    from selfplay.cli import typed_config

    return typed_config("flywheel", cfg)
