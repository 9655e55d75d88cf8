"""Distillation: fine-tune a checkpoint on rounds' shards: `python -m selfplay.distill` (conf/distill.yaml).

The solver learns from the rounds' `sft/` rows (verified traces; or, for the unverified control,
`sft/` + `rejected/`: every trace), and the critic learns in the same step from the `critic/`
rows, whose `messages` already hold the critic prompt and the verifier's verdict as the target.
One model with two prompts (critic="shared"), or a separate critic model fine-tuned from its own
checkpoint (critic="separate"), or no critic data (critic="none").

The newest round is the new data; older rounds in the list are replay, capped at `replay` times the
newest round's examples, so a long flywheel does not grow each step without bound.

The result is a standard transformers model directory (written under a temporary name and renamed
when complete) with distill.json: examples, tokens, epochs, steps, seconds and the loss curve.
trainer=trl (the default) trains with TRL's SFTTrainer (or DPOTrainer, method=dpo), in this process
or as a Ray Train job on `workers` workers (selfplay.distill_trl). trainer=loop trains the same
examples with selfplay.train.train_sft, the hand-written loop: length-bucketed batches, loss on
assistant tokens.
"""

from __future__ import annotations

import logging
import math
import random
import shutil
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Callable

from selfplay.storage import copy_partial, partial_dir, swap_in, write_json
from selfplay.train import Example, NothingToLearn, TrainConfig, train_sft

log = logging.getLogger("selfplay.distill")

REPORT = "distill.json"
SOLVER_ROWS = ("sft", "all")
CRITIC_MODES = ("shared", "separate", "none")
TRAINERS = ("loop", "trl")
METHODS = ("sft", "dpo")


@dataclass(frozen=True)
class DistillConfig:
    base_model: str
    """The checkpoint to fine-tune (a model directory: weights + tokenizer)."""
    rounds: list[str]
    """Round directories (<out_dir>/round-<k>) to learn from, local paths or object-store URIs
    (s3://bucket/runs/exp1/round-0): wherever selfplay.shards.load_rows reads; the last is the newest."""
    out_dir: str
    """The new model directory (replaced as a whole when the run finishes)."""
    solver_rows: str = "sft"
    """"sft": verified traces only; "all": sft + rejected rows, every trace unverified (the control)."""
    critic: str = "shared"
    """"shared": critic rows train the same model; "separate": they train `critic_base_model` into
    `critic_out_dir`; "none": no critic rows."""
    critic_base_model: str | None = None
    """critic=separate: the critic checkpoint to fine-tune."""
    critic_out_dir: str | None = None
    """critic=separate: where the new critic goes."""
    critic_ratio: float = 0.5
    """At most this many critic examples per solver example (critic rows outnumber traces when every
    trace is judged; the cap keeps the solver's share of the steps)."""
    replay: float = 1.0
    """Older rounds add at most replay x (newest round's examples), sampled; 0 = newest round only;
    .inf = all of them."""
    epochs: float = 2.0
    """Passes over the examples; steps = epochs x examples / batch_size, within [min_steps, max_steps]."""
    min_steps: int = 10
    """Fewest optimizer steps (a round with few accepted traces still moves the model)."""
    max_steps: int = 2000
    """Most optimizer steps."""
    batch_size: int = 32
    """Examples per step."""
    lr: float = 1e-3
    """Peak learning rate (AdamW); fine-tuning wants less than training from scratch."""
    warmup_steps: int = 10
    """Linear warmup steps."""
    schedule: str = "cosine"
    """"cosine", "linear" or "constant" decay after warmup."""
    max_length: int = 512
    """Examples longer than this many tokens are dropped (and counted)."""
    seed: int = 0
    """Seeds sampling of replay and critic rows and the batch order."""
    threads: int = 2
    """torch CPU threads."""
    device: str = "auto"
    """"cpu", "cuda" or "auto" (cuda when visible)."""
    dtype: str = "auto"
    """"auto" = bfloat16 on a GPU that computes in it (Ampere and later), else float32; or "float32", "bfloat16"."""
    trainer: str = "trl"
    """"trl": TRL's SFTTrainer / DPOTrainer (selfplay.distill_trl), in this process or as a Ray Train
    job (`workers`); "loop": selfplay.train.train_sft in this process (the hand-written loop the
    bootstrap trains with; bench/distill.py's reference)."""
    method: str = "sft"
    """"sft": learn the kept traces (and critic rows); "dpo": TRL's DPOTrainer on preference pairs
    (the rounds' pairs/ rows, else built from sft/ and rejected/ by selfplay.products' rule); needs
    trainer=trl. DPO learns no critic rows."""
    workers: int = 0
    """trainer=trl: 0 = train in this process; N >= 1 = a Ray Train job (TorchTrainer, DDP) on N
    workers of the connected Ray (a local one when none is), checkpointing to storage beside out_dir."""
    gpus_per_worker: float = 0.0
    """GPUs per Ray Train worker (0 = CPU workers, gloo); batch_size is split across the workers (a round
    with fewer examples than workers repeats them, so each worker has one per step)."""
    cpus_per_worker: float = 1.0
    """CPUs per Ray Train worker (its torch threads: `threads`)."""
    max_failures: int = 2
    """A Ray Train job restarts its workers this many times after a worker dies, from the last checkpoint."""
    checkpoint_every: int = 50
    """A Ray Train job saves a checkpoint (model + optimizer + data position) every this many steps."""
    lora_rank: int = 0
    """trainer=trl: 0 = full fine-tuning; r > 0 = LoRA adapters of rank r (alpha 2r) on every linear
    layer through peft, merged into the weights when the run finishes (the output is a plain model)."""
    gradient_checkpointing: bool = False
    """trainer=trl: recompute activations in the backward pass (less memory, about a third more compute)."""
    fsdp: bool = False
    """trainer=trl with GPU workers: shard the weights, gradients and optimizer state over the
    workers (FSDP2 through accelerate, one shard per transformer layer) instead of a whole copy on
    each (DDP): full fine-tuning of a model that does not fit one GPU. Not with lora_rank. GPUs only:
    accelerate runs FSDP on GPUs, and CPU workers would silently train DDP."""
    packing: bool = False
    """trainer=trl, method=sft: pack examples into max_length rows (best-fit, padding-free: needs a
    flash-attention model on GPU to keep examples apart); False = length-grouped batches, as the loop."""
    dpo_beta: float = 0.1
    """method=dpo: the KL weight of the DPO loss (how far the policy may move from the base model)."""

    def __post_init__(self):
        if not str(self.base_model).strip() or not str(self.out_dir).strip():
            raise ValueError("base_model and out_dir must be set")
        if not self.rounds:
            raise ValueError("rounds: needs at least one round directory")
        if self.solver_rows not in SOLVER_ROWS:
            raise ValueError(f"solver_rows must be one of {', '.join(SOLVER_ROWS)}; got {self.solver_rows!r}")
        if self.critic not in CRITIC_MODES:
            raise ValueError(f"critic must be one of {', '.join(CRITIC_MODES)}; got {self.critic!r}")
        if self.critic == "separate" and not (self.critic_base_model and self.critic_out_dir):
            raise ValueError("critic=separate needs critic_base_model and critic_out_dir")
        if self.critic_ratio < 0 or self.replay < 0 or self.epochs <= 0:
            raise ValueError("critic_ratio and replay must be >= 0, epochs > 0")
        if not 1 <= self.min_steps <= self.max_steps:
            raise ValueError(f"need 1 <= min_steps <= max_steps, got {self.min_steps}, {self.max_steps}")
        if self.device not in ("auto", "cpu", "cuda") or self.dtype not in ("auto", "float32", "bfloat16"):
            raise ValueError(f"device must be auto/cpu/cuda and dtype auto/float32/bfloat16; got {self.device!r}, {self.dtype!r}")
        if self.trainer not in TRAINERS or self.method not in METHODS:
            raise ValueError(f"trainer must be one of {', '.join(TRAINERS)} and method one of {', '.join(METHODS)}; "
                             f"got {self.trainer!r}, {self.method!r}")
        if self.trainer == "loop":
            trl_only = {"method=dpo": self.method != "sft", f"workers={self.workers}": self.workers,
                        "lora_rank": self.lora_rank, "gradient_checkpointing": self.gradient_checkpointing,
                        "packing": self.packing, "fsdp": self.fsdp}
            if any(trl_only.values()):
                raise ValueError(f"{', '.join(k for k, on in trl_only.items() if on)}: need trainer=trl (trainer=loop "
                                 "trains SFT in this process: workers=0)")
        if self.fsdp and (not self.workers or not self.gpus_per_worker or self.lora_rank or self.method != "sft"):
            raise ValueError("fsdp shards full SFT over GPU workers: it needs workers >= 1, gpus_per_worker > 0 "
                             "(accelerate runs FSDP on GPUs only), method=sft and no lora_rank (LoRA's adapters are "
                             "small: DDP keeps a copy of them per worker)")
        if self.workers and self.device == "cuda" and not self.gpus_per_worker:
            raise ValueError("device=cuda with Ray Train workers needs gpus_per_worker > 0 (a worker given no GPU sees none)")
        if self.workers < 0 or self.gpus_per_worker < 0 or self.cpus_per_worker <= 0 or self.max_failures < 0:
            raise ValueError("workers, gpus_per_worker and max_failures must be >= 0, cpus_per_worker > 0")
        if self.workers and self.batch_size % self.workers:
            raise ValueError(f"batch_size ({self.batch_size}) must split evenly over {self.workers} workers")
        if self.checkpoint_every < 1 or self.lora_rank < 0 or self.dpo_beta <= 0:
            raise ValueError("checkpoint_every must be >= 1, lora_rank >= 0 and dpo_beta > 0")
        TrainConfig(batch_size=self.batch_size, lr=self.lr, warmup_steps=self.warmup_steps, schedule=self.schedule,
                    max_length=self.max_length, threads=self.threads)  # the loop's own checks, at start

    def train_config(self, examples: int) -> TrainConfig:
        steps = min(self.max_steps, max(self.min_steps, math.ceil(self.epochs * examples / self.batch_size)))
        return TrainConfig(steps=steps, batch_size=self.batch_size, lr=self.lr, warmup_steps=min(self.warmup_steps, steps // 2),
                           schedule=self.schedule, max_length=self.max_length, seed=self.seed, threads=self.threads,
                           log_every=max(1, min(50, steps // 10)))


# ------------------------------------------------------------------------------ data


def _examples(round_dir: str, kinds: tuple[str, ...]) -> list[Example]:
    """(prompt messages, assistant text) from the committed rows of `kinds` in one round."""
    from selfplay.shards import load_rows

    out = []
    for kind in kinds:
        table = load_rows(round_dir, kind)
        if "messages" not in table.column_names:
            continue
        for messages in table.column("messages").to_pylist():
            if not messages or messages[-1].get("role") != "assistant":
                raise ValueError(f"{round_dir}/{kind}: a row's messages do not end with the assistant turn")
            out.append(Example([{"role": m["role"], "content": m["content"]} for m in messages[:-1]], messages[-1]["content"]))
    return out


def _with_replay(per_round: list[list[Example]], replay: float, rng: random.Random) -> list[Example]:
    """The newest round's examples plus a sample of the older ones (at most replay x newest)."""
    newest, older = per_round[-1], [e for r in per_round[:-1] for e in r]
    if math.isinf(replay):
        return newest + older
    cap = int(replay * max(1, len(newest)))
    return newest + (rng.sample(older, cap) if len(older) > cap else older)


def gather(cfg: DistillConfig) -> dict[str, list[Example]]:
    """Solver and critic examples from the configured rounds (replay and the critic cap applied)."""
    from selfplay.storage import MANIFEST, RoundStorage

    missing = [r for r in cfg.rounds if not RoundStorage(r).exists(MANIFEST)]
    if missing:
        raise FileNotFoundError(f"no round output (manifest.json) in: {', '.join(missing)}")
    rng = random.Random(f"distill|{cfg.seed}")
    solver_kinds = ("sft",) if cfg.solver_rows == "sft" else ("sft", "rejected")
    solver = _with_replay([_examples(r, solver_kinds) for r in cfg.rounds], cfg.replay, rng)
    critic: list[Example] = []
    if cfg.critic != "none":
        critic = _with_replay([_examples(r, ("critic",)) for r in cfg.rounds], cfg.replay, rng)
        cap = int(cfg.critic_ratio * len(solver)) if cfg.critic == "shared" else len(critic)
        critic = rng.sample(critic, cap) if len(critic) > cap else critic
    return {"solver": solver, "critic": critic}


# ------------------------------------------------------------------------------ training


def _device(cfg: DistillConfig) -> tuple[str, str]:
    import torch

    device = cfg.device if cfg.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device 'cuda' was asked for but torch sees no CUDA device")
    # bf16 only where the GPU computes in it (Ampere and later); older GPUs and CPUs train in fp32.
    bf16 = device == "cuda" and torch.cuda.is_bf16_supported()
    dtype = cfg.dtype if cfg.dtype != "auto" else ("bfloat16" if bf16 else "float32")
    return device, dtype


def fine_tune(base: str, out_dir: str, examples: list[Example], cfg: DistillConfig,
              log_fn: Callable[[str], None] | None = log.info) -> dict[str, Any]:
    """Fine-tune `base` on `examples` into `out_dir` (atomically); returns the training numbers."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if not examples:
        raise ValueError(f"nothing to distil into {out_dir}: the rounds have no usable rows")
    device, dtype = _device(cfg)
    torch.set_num_threads(cfg.threads)
    tokenizer = AutoTokenizer.from_pretrained(base)
    if tokenizer.pad_token_id is None:  # many chat models ship without one; padding is masked anyway
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(base, dtype=getattr(torch, dtype)).to(device)
    train = cfg.train_config(len(examples))
    report = train_sft(model, tokenizer, examples, train, log=log_fn)
    partial = partial_dir(Path(out_dir))
    model.save_pretrained(partial)
    tokenizer.save_pretrained(partial)
    model.generation_config.save_pretrained(partial)
    return {"partial": partial, "base_model": base, "device": device, "dtype": dtype,
            "examples": len(examples), "kept_examples": report.examples, "dropped_examples": report.dropped,
            "steps": report.steps, "epochs": round(report.steps * min(train.batch_size, report.examples) / report.examples, 3),
            "tokens": report.tokens, "target_tokens": report.target_tokens, "train_seconds": report.seconds,
            "loss_curve": report.loss_curve, "final_loss": report.final_loss}


def _publish(result: dict[str, Any], out_dir: str, extra: dict[str, Any]) -> dict[str, Any]:
    """Write distill.json into the finished partial directory, then swap it in whole."""
    partial: Path = result.pop("partial")
    report = result | extra
    write_json(partial / REPORT, report)
    swap_in(partial, Path(out_dir))
    return report


def _train(cfg: DistillConfig, role: str, examples: list[Example], log_fn) -> dict[str, Any]:
    """Fine-tune `role`'s model with the configured trainer; NothingToLearn when no example fits
    max_length or (dpo) the rounds give no pair."""
    base, out_dir = (cfg.critic_base_model, cfg.critic_out_dir) if role == "critic" else (cfg.base_model, cfg.out_dir)
    if cfg.trainer == "loop":
        return fine_tune(base, out_dir, examples, cfg, log_fn) | {"trainer": "loop", "method": "sft", "workers": 0}
    from selfplay import distill_ray, distill_trl

    run = distill_ray.fine_tune_on_ray if cfg.workers else distill_trl.fine_tune_in_process
    return run(cfg, role, log_fn) | {"base_model": base}


def distill(cfg: DistillConfig, log_fn: Callable[[str], None] | None = log.info) -> dict[str, Any]:
    """Fine-tune on the rounds' shards; returns (and writes) distill.json. Rounds with nothing to
    learn (no accepted rows, none that fits max_length; for dpo, no pairs) carry the base model over,
    logged and recorded as role "unchanged" with the reason. So does a separate critic's model."""
    started = time.perf_counter()
    data = gather(cfg)
    counts = {"solver": len(data["solver"]), "critic": len(data["critic"])}
    log.info("distilling %s -> %s with %s %s: %d solver + %d critic examples from %d round(s)", cfg.base_model,
             cfg.out_dir, cfg.trainer, cfg.method, counts["solver"], counts["critic"], len(cfg.rounds))
    critic_report = None
    if cfg.critic == "separate" and data["critic"] and cfg.method == "sft":
        try:
            critic_report = _publish(_train(cfg, "critic", data["critic"], log_fn), cfg.critic_out_dir,
                                     {"role": "critic", "config": asdict(cfg)})
        except NothingToLearn as nothing:
            critic_cfg = replace(cfg, base_model=cfg.critic_base_model, out_dir=cfg.critic_out_dir)
            critic_report = keep_checkpoint(critic_cfg, _nothing(critic_cfg, nothing, log_fn))
    examples = data["solver"] + (data["critic"] if cfg.critic == "shared" else [])
    try:
        if not examples:
            raise NothingToLearn("no accepted rows")
        result = _train(cfg, "solver", examples, log_fn)
    except NothingToLearn as nothing:
        return keep_checkpoint(cfg, _nothing(cfg, nothing, log_fn), critic_report)
    extra = {"role": "solver+critic" if cfg.critic == "shared" and cfg.method == "sft" else "solver",
             "rounds": list(cfg.rounds), "example_counts": counts, "config": asdict(cfg), "critic_model": critic_report,
             "seconds": round(time.perf_counter() - started, 2)}
    return _publish(result, cfg.out_dir, extra)


def _nothing(cfg: DistillConfig, why: NothingToLearn, log_fn) -> str:
    message = f"nothing to distil in {', '.join(cfg.rounds)} ({why}): {cfg.base_model} carries over"
    if log_fn:
        log_fn(message)
    return message


def keep_checkpoint(cfg: DistillConfig, reason: str = "nothing to distil", critic_model: dict | None = None) -> dict[str, Any]:
    """The base model, unchanged, as this step's output (a round that yielded nothing to learn).
    A hub id is copied from its snapshot in the local Hugging Face cache (fetched if it is not there)."""
    from selfplay.engines.resolve import resolve_model

    partial = copy_partial(resolve_model(cfg.base_model).path, Path(cfg.out_dir),
                           ignore=shutil.ignore_patterns(REPORT, "eval.json", "bootstrap.json"))
    result = {"partial": partial, "base_model": cfg.base_model, "examples": 0, "kept_examples": 0, "dropped_examples": 0,
              "steps": 0, "epochs": 0.0, "tokens": 0, "target_tokens": 0, "train_seconds": 0.0, "loss_curve": [],
              "final_loss": None}
    return _publish(result, cfg.out_dir, {"role": "unchanged", "reason": reason, "rounds": list(cfg.rounds), "config": asdict(cfg),
                                          "example_counts": {"solver": 0, "critic": 0}, "seconds": 0.0,
                                          "critic_model": critic_model})


def _run_and_print(config: DistillConfig) -> None:
    report = distill(config)
    print(f"| examples | kept | steps | epochs | tokens | final loss | seconds |\n|---|---|---|---|---|---|---|\n"
          f"| {report['examples']} | {report['kept_examples']} | {report['steps']} | {report['epochs']} | "
          f"{report['tokens']:,} | {report['final_loss']} | {report['seconds']} |")
    print(f"wrote {config.out_dir}")


if __name__ == "__main__":
    from selfplay import cli
    from selfplay.config import typed

    cli.main("distill", lambda cfg: typed(DistillConfig, cli.plain(cfg), "distill"), _run_and_print)
