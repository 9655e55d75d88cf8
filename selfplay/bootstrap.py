"""Train the reference model from scratch: `python -m selfplay.bootstrap` (conf/bootstrap.yaml).

One small Llama with a character tokenizer learns both roles from reference solutions of the easy
difficulty band: solving (step-by-step traces) and judging traces (correct ones and ones with
planted step errors, labelled by the step checker). A second model trained the same way on
answer-only traces is the contrast that shows what the steps buy. Both are evaluated greedily on
fresh held-out problems, in the easy band and in a harder band the flywheel has to close
(scored by selfplay.scoring, like every evaluation).

Output: a standard transformers directory (weights, tokenizer, generation config) that
transformers and vLLM load, and bootstrap.json with the numbers. A rerun with the same config and
code reuses the trained model (and the results, when the evaluation settings match too).
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

from selfplay.storage import partial_dir, swap_in, write_json
from selfplay.prompts import format_answer_only, solver_messages
from selfplay.refmodel import ModelShape, build_model, build_tokenizer
from selfplay.scoring import Band, summary_table
from selfplay.tasks import check_difficulties, problem_stream, reference_solution
from selfplay.tasks.judging import judged_traces
from selfplay.train import Example, TrainConfig, TrainReport, train_sft
from verifiers.steps import STEP_TASKS

log = logging.getLogger("selfplay.bootstrap")

MODEL_FILES = ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "generation_config.json")
REPORT = "bootstrap.json"
# The training code: part of the cache key with the training examples themselves (which carry every
# change of the tasks, the prompts and the step format), so a refactor that leaves them be reuses the model.
CODE_FILES = ("selfplay/train.py", "selfplay/refmodel.py")


@dataclass(frozen=True)
class EvalConfig:
    problems: int = 100
    """Held-out problems per (task, difficulty) cell (fewer where the space is smaller)."""
    easy: Band = field(default_factory=lambda: {"addition": [1, 2, 3], "multiplication": [1, 2, 3]})
    """The band the model was trained on (evaluated on fresh held-out problems)."""
    hard: Band = field(default_factory=lambda: {"addition": [4, 5], "multiplication": [4, 5]})
    """A harder band, where the model should be weak: room for the flywheel."""
    judge_examples: int = 300
    """Held-out judging examples for the critic metrics."""
    batch_size: int = 64
    """Sequences per generation batch (hf engine)."""
    max_tokens: int = 128
    """Most generated tokens per completion."""

    def __post_init__(self):
        object.__setattr__(self, "easy", check_difficulties("eval.easy", self.easy))
        object.__setattr__(self, "hard", check_difficulties("eval.hard", self.hard))
        if min(self.problems, self.judge_examples, self.batch_size, self.max_tokens) < 1:
            raise ValueError("eval.problems, judge_examples, batch_size and max_tokens must be >= 1")


@dataclass(frozen=True)
class ContrastConfig:
    enabled: bool = True
    """Also train the answer-only contrast model with the same solve budget: as many solve examples
    as the reference model sees (`steps / (1 + judge_ratio)` steps, since the reference model spends
    the rest of its steps on judging, which has no answer-only form). With threads > 1 it trains
    in a process of its own beside the reference model (see _ContrastJob)."""
    out_dir: str | None = None
    """Where it goes; None = "<out_dir>-answer-only"."""


@dataclass(frozen=True)
class BootstrapConfig:
    out_dir: str = "models/reference"
    """The trained model directory (and bootstrap.json in it)."""
    seed: int = 0
    """Seeds model init, data and order: same seed, same model."""
    steps: int = 1600
    """Optimizer steps of the reference model (the answer-only contrast takes its share of them).
    1600 keeps the whole run, contrast and evaluations included, under 5 minutes on 2 cores; 1400
    was far worse (0.01 on 3-digit addition, 0.05 on 3-digit multiplication)."""
    batch_size: int = 32
    """Examples per step. At a fixed token budget more, smaller steps learn much more here: 1600 x 32
    reached 0.86 on 3-digit addition where 800 x 64 reached 0.10 (same tokens, same seconds)."""
    lr: float = 3e-3
    """Peak learning rate (5e-3 and 2e-3 were no better in short trials; 1e-2 learnt slower)."""
    warmup_steps: int = 30
    """Linear warmup steps."""
    threads: int = 2
    """torch CPU threads."""
    examples_per_difficulty: int = 3000
    """Solve examples per (task, difficulty) on average; each difficulty gets a share proportional
    to its number (1-digit sums are few and learnt fast, 3-digit ones need the examples)."""
    solve: Band = field(default_factory=lambda: {"addition": [1, 2, 3], "multiplication": [1, 2, 3]})
    """The easy band: task family -> difficulties trained."""
    judge_ratio: float = 0.5
    """Judging examples per solve example (0.5 = solve:judge 2:1); 0 = solver only."""
    judge_wrong_share: float = 0.5
    """Share of judging examples with a planted error."""
    judge_lucky_share: float = 0.25
    """Share of planted errors that keep the right final answer."""
    model: ModelShape = field(default_factory=ModelShape)
    """Size of the Llama."""
    eval: EvalConfig = field(default_factory=EvalConfig)
    """Held-out evaluation."""
    contrast: ContrastConfig = field(default_factory=ContrastConfig)
    """The answer-only contrast model ("control" is the flywheel's unverified arm)."""

    def __post_init__(self):
        object.__setattr__(self, "solve", check_difficulties("solve", self.solve))
        if not str(self.out_dir).strip():
            raise ValueError("out_dir must be a directory path")
        if min(self.steps, self.batch_size, self.threads, self.examples_per_difficulty) < 1:
            raise ValueError("steps, batch_size, threads and examples_per_difficulty must be >= 1")
        if self.judge_ratio < 0:
            raise ValueError(f"judge_ratio must be >= 0, got {self.judge_ratio}")
        if self.judge_ratio and not set(self.solve) & set(STEP_TASKS):
            raise ValueError(f"judge_ratio > 0 needs a step-checked family in solve ({', '.join(STEP_TASKS)})")
        for name in ("judge_wrong_share", "judge_lucky_share"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")

    @classmethod
    def from_dict(cls, raw: dict[str, Any], path: str = "bootstrap") -> BootstrapConfig:
        """Strictly typed: an unknown or mistyped key is a ConfigError naming its path."""
        from selfplay.config import typed

        return typed(cls, raw, path)

    @property
    def contrast_dir(self) -> Path:
        return Path(self.contrast.out_dir or f"{self.out_dir}-answer-only")

    def train_config(self, answer_only: bool = False) -> TrainConfig:
        steps = max(1, round(self.steps / (1 + self.judge_ratio))) if answer_only else self.steps
        return TrainConfig(steps=steps, batch_size=self.batch_size, lr=self.lr, warmup_steps=self.warmup_steps,
                           seed=self.seed, threads=self.threads, max_length=self.model.max_positions,
                           log_every=max(1, min(50, steps // 10)))


# ------------------------------------------------------------------------------ data


def training_examples(config: BootstrapConfig, answer_only: bool = False) -> list[Example]:
    """Solve examples over the easy band, plus judging examples unless `answer_only`."""
    solve, judge_problems = [], []
    for fam, difficulties in config.solve.items():
        mean = sum(difficulties) / len(difficulties)
        for d in difficulties:
            stream = problem_stream(fam, config.seed, d, "train")
            for _ in range(max(1, round(config.examples_per_difficulty * d / mean))):
                problem = next(stream)
                reference = reference_solution(problem)
                text = format_answer_only(reference.answer) if answer_only else reference.trace()
                solve.append(Example(solver_messages(problem.question), text))
                if fam in STEP_TASKS:
                    judge_problems.append(problem)
    if answer_only or not config.judge_ratio:
        return solve
    rng = random.Random(f"judge|{config.seed}")
    chosen = [judge_problems[rng.randrange(len(judge_problems))] for _ in range(int(len(solve) * config.judge_ratio))]
    judged = judged_traces(chosen, rng, wrong_share=config.judge_wrong_share, lucky_share=config.judge_lucky_share)
    return solve + [Example(j.messages(), j.verdict()) for j in judged]


# ------------------------------------------------------------------------------ cache


def code_version(root: Path = Path(__file__).resolve().parent.parent) -> str:
    digest = hashlib.sha256()
    for name in CODE_FILES:
        digest.update(name.encode() + b"\0" + (root / name).read_bytes())
    return digest.hexdigest()[:16]


def content_hash(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def examples_digest(examples: list[Example]) -> str:
    digest = hashlib.sha256()
    for example in examples:
        digest.update(json.dumps([example.messages, example.completion], sort_keys=True).encode() + b"\n")
    return digest.hexdigest()[:16]


def training_key(config: BootstrapConfig, answer_only: bool) -> str:
    """What the weights are made of: the training examples, the training code and the config minus
    where it goes, how it is evaluated and how many threads train it (the same seed gives the same
    weights on 1 or 2 threads: the contrast trained on one thread beside the reference model matched
    its sequential two-thread run)."""
    settings = {k: v for k, v in asdict(config).items() if k not in ("out_dir", "eval", "contrast", "threads")}
    if answer_only:
        settings.pop("judge_ratio"), settings.pop("judge_wrong_share"), settings.pop("judge_lucky_share")
    memo = content_hash(settings, answer_only)
    if memo not in _TRAINING_KEYS:  # building the examples takes seconds
        examples = examples_digest(training_examples(config, answer_only))
        _TRAINING_KEYS[memo] = content_hash(settings, answer_only, examples, code_version())
    return _TRAINING_KEYS[memo]


_TRAINING_KEYS: dict[str, str] = {}


def cached_report(directory: Path) -> dict[str, Any] | None:
    """The directory's bootstrap.json when the model files are all there, else None."""
    report = directory / REPORT
    if not report.exists() or not all((directory / f).exists() for f in MODEL_FILES):
        return None
    try:
        return json.loads(report.read_text())
    except json.JSONDecodeError:
        return None


def write_report(directory: Path, report: dict[str, Any]) -> None:
    write_json(directory / REPORT, report)


# ------------------------------------------------------------------------------ training


def is_trained(config: BootstrapConfig, directory: Path, answer_only: bool) -> bool:
    cached = cached_report(directory)
    return bool(cached) and cached.get("training_key") == training_key(config, answer_only)


def train_model(config: BootstrapConfig, directory: Path, answer_only: bool,
                threads: Callable[[], int] | None = None) -> dict[str, Any]:
    """Train one model into `directory`, or reuse the one there when its training key matches.
    `threads`: see selfplay.train.train_sft (the training key does not depend on it)."""
    key = training_key(config, answer_only)
    if is_trained(config, directory, answer_only):
        log.info("reusing %s (training key %s matches)", directory, key)
        return cached_report(directory)
    role = "answer-only contrast" if answer_only else "reference model"
    started = time.perf_counter()
    examples = training_examples(config, answer_only)
    tokenizer = build_tokenizer()
    model = build_model(tokenizer, config.model, seed=config.seed)
    params = sum(p.numel() for p in model.parameters())
    train = config.train_config(answer_only)
    log.info("training the %s: %s parameters, %d examples, %d steps x %d", role, f"{params:,}",
             len(examples), train.steps, train.batch_size)
    report: TrainReport = train_sft(model, tokenizer, examples, train, log=log.info, threads=threads)
    partial = partial_dir(directory)
    _save(model, tokenizer, partial)
    swap_in(partial, directory)
    result = {
        "training_key": key, "answer_only": answer_only, "parameters": params,
        "config": asdict(config), "code_version": code_version(),
        "training": {"examples": len(examples), "kept_examples": report.examples, "dropped_examples": report.dropped,
                     "steps": report.steps, "tokens": report.tokens, "target_tokens": report.target_tokens,
                     "train_seconds": report.seconds, "seconds": round(time.perf_counter() - started, 2),
                     "loss_curve": report.loss_curve, "final_loss": report.final_loss},
    }
    write_report(directory, result)
    return result


def _save(model, tokenizer, directory: Path) -> None:
    from transformers import GenerationConfig

    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    GenerationConfig(
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id, do_sample=False, max_new_tokens=256,
    ).save_pretrained(directory)


# ------------------------------------------------------------------------------ evaluation


def evaluate_model(directory: Path, config: BootstrapConfig, answer_only: bool = False) -> dict[str, Any]:
    """Greedy held-out scores per band, task and difficulty ("solve") and the critic on judging
    examples with planted errors ("critic"), by selfplay.evaluate; the answer-only contrast is
    held to the exact match alone, and judges nothing."""
    from selfplay.engines import EngineConfig, load_engine
    from selfplay.evaluate import greedy_cells, judge_planted_errors

    engine = load_engine(EngineConfig(model=str(directory), engine="hf", device="cpu", dtype="float32",
                                      batch_size=config.eval.batch_size, seed=config.seed))
    try:
        solve = greedy_cells(engine, {"easy": config.eval.easy, "hard": config.eval.hard}, config.eval.problems,
                             config.seed, config.eval.max_tokens, verify=not answer_only)
        if answer_only:
            return {"solve": solve}
        return {"solve": solve, "critic": judge_planted_errors(
            engine, config.eval.easy, problems=config.eval.problems, seed=config.seed, examples=config.eval.judge_examples,
            wrong_share=config.judge_wrong_share, lucky_share=config.judge_lucky_share, max_tokens=config.eval.max_tokens)}
    finally:
        engine.close()


class _ContrastJob:
    """The answer-only contrast training in a process of its own, on one thread, while the
    reference model trains on the others: two one-thread trainings get about a third more done
    on 2 cores than one two-thread training (tiny matrices scale poorly across threads)."""

    def __init__(self, config: BootstrapConfig):
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        self.config = config
        self.pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"))
        self.future = self.pool.submit(_train_contrast, config)

    def threads(self) -> int:
        """Threads the reference model may use now: all but the contrast's, until it is done."""
        return self.config.threads if self.future.done() else self.config.threads - 1

    def result(self) -> dict[str, Any]:
        return self.future.result()


def _train_contrast(config: BootstrapConfig) -> dict[str, Any]:
    """In the contrast's process: log like the parent, train on one thread."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s [contrast] %(message)s", datefmt="%H:%M:%S")
    return train_model(config, config.contrast_dir, answer_only=True, threads=lambda: 1)


@contextmanager
def _contrast_beside(config: BootstrapConfig):
    """A _ContrastJob when both models need training and there are threads to share, else None."""
    if not (config.contrast.enabled and config.threads > 1 and not is_trained(config, Path(config.out_dir), False)
            and not is_trained(config, config.contrast_dir, True)):
        yield None
        return
    job = _ContrastJob(config)
    try:
        yield job
    finally:
        job.pool.shutdown(wait=True, cancel_futures=True)


# ------------------------------------------------------------------------------ entry point


def run(config: BootstrapConfig) -> dict[str, Any]:
    """Train (or reuse) the reference model and the contrast, evaluate, write bootstrap.json."""
    import torch

    torch.set_num_threads(config.threads)
    started = time.perf_counter()
    out = Path(config.out_dir)
    eval_key = content_hash(training_key(config, False), asdict(config.eval), asdict(config.contrast),
                            training_key(config, True) if config.contrast.enabled else None)
    cached = cached_report(out)
    if cached and cached.get("eval_key") == eval_key and (not config.contrast.enabled or cached_report(config.contrast_dir)):
        log.info("cache hit: %s is up to date (eval key %s)", out, eval_key)
        return cached | {"cache_hit": True}
    with _contrast_beside(config) as contrast_job:
        report = train_model(config, out, answer_only=False, threads=contrast_job.threads if contrast_job else None)
        report.update(evaluate_model(out, config))
        contrast = contrast_job.result() if contrast_job else None
    torch.set_num_threads(config.threads)
    report.pop("contrast", None)
    if config.contrast.enabled:
        contrast = contrast or train_model(config, config.contrast_dir, answer_only=True)
        contrast_eval = content_hash(asdict(config.eval))
        if contrast.get("eval_key") != contrast_eval or "solve" not in contrast:
            contrast["solve"] = evaluate_model(config.contrast_dir, config, answer_only=True)["solve"]
            contrast["eval_key"] = contrast_eval
            write_report(config.contrast_dir, contrast)
        report["contrast"] = {"model_dir": str(config.contrast_dir), "parameters": contrast["parameters"],
                              "training": contrast["training"], "solve": contrast["solve"]}
    report["eval_key"] = eval_key
    report["seconds"] = round(time.perf_counter() - started, 2)
    write_report(out, report)
    return report | {"cache_hit": False}


def report_table(report: dict[str, Any]) -> str:
    """bootstrap.json as markdown: the held-out cells with the answer-only contrast beside them
    and the critic (selfplay.scoring.summary_table), then what the training cost."""
    training = report.get("training", {})
    return (summary_table(report.get("solve", {}), report.get("critic"), answer_only=report.get("contrast", {}).get("solve", {}))
            + f"\n\n{report.get('parameters', 0):,} parameters, {training.get('tokens', 0):,} training tokens, "
            f"{training.get('train_seconds', 0)} s training, {report.get('seconds', 0)} s total")


def ensure_reference_model(model: str) -> None:
    """Build the reference model at `model` when that directory does not exist yet: what the demo
    does on a fresh machine. An existing directory is used as it is (its own bootstrap.json says
    how it was made); anything else would be retraining behind the user's back."""
    if all((Path(model) / name).exists() for name in MODEL_FILES):
        return
    log.info("%s does not exist yet: training the reference model first (cached afterwards)", model)
    # The answer-only contrast is the bootstrap report's business, not the demo's: skip it here.
    report = run(BootstrapConfig(out_dir=model, contrast=ContrastConfig(enabled=False)))
    print(report_table(report))


def _run_and_print(config: BootstrapConfig) -> None:
    report = run(config)
    print(("(cached) " if report["cache_hit"] else "") + f"reference model in {config.out_dir}")
    print(report_table(report))


if __name__ == "__main__":
    from selfplay import cli

    cli.main("bootstrap", lambda cfg: BootstrapConfig.from_dict(cli.plain(cfg)), _run_and_print)
