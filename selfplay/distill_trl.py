"""Distillation through TRL (distill.trainer=trl): SFTTrainer or DPOTrainer, in this process or as a
Ray Train job on the cluster's workers (distill.workers >= 1).

SFT learns the same examples the loop does (selfplay.distill.gather), tokenized by the same rule
(selfplay.train.tokenize: chat-templated prompt, then the assistant text and the end-of-turn token;
over-long examples dropped and counted), and handed to SFTTrainer already tokenized with a
`completion_mask`: TRL's completion-only loss then masks the prompt, and its collator pads. The
batches are the loop's (selfplay.train.full_batches: length-grouped within windows of 16 batches,
in the loop's order), laid out row after row and read in sequence, so both trainers pad alike.
transformers' own `group_by_length` sorts within windows of 2 batches on a demo-sized round (its
window is a quarter of the data, at most 50 batches): 16 % of its positions were padding against
the loop's 2 %, and TRL took 1.26x the loop's time per step. With distill.packing, TRL packs
shuffled examples instead.

DPO learns preference pairs: the rounds' pairs/ rows, or, for a round written before pairs/ existed,
pairs built from its sft/ and rejected/ rows by selfplay.products.pair_rows (one rule for both).

The same trainer runs as a Ray Train job on the cluster's workers: selfplay.distill_ray.

A base model without a chat template gets FALLBACK_CHAT_TEMPLATE (saved with the new checkpoint,
so the engines render prompts the same way afterwards).
"""

from __future__ import annotations

import logging
import random
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any, Callable

from selfplay.storage import partial_dir
from selfplay.train import NothingToLearn

log = logging.getLogger("selfplay.distill")

FALLBACK_CHAT_TEMPLATE = (
    "{% for message in messages %}{{ message['role'] + ': ' + message['content'] + eos_token + '\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ 'assistant: ' }}{% endif %}"
)
"""A base model without a chat template renders turns as "role: content<eos>\\n" and the reply after
"assistant: ". Plain text any tokenizer can encode; a base model has no template to agree with."""

PROGRESS_EVERY_S = 10.0
"""A TRL run logs its progress line at most this often (and at its last step)."""

# ------------------------------------------------------------------------------ data


def preference_pairs(cfg) -> list[dict[str, Any]]:
    """Conversational (prompt, chosen, rejected) pairs of the configured rounds, replay applied."""
    from selfplay.distill import _with_replay
    from selfplay.products import PairsConfig, pair_rows
    from selfplay.shards import load_rows
    from selfplay.storage import read_manifest

    per_round = []
    for round_dir in cfg.rounds:
        manifest = read_manifest(round_dir)
        if any(s["kind"] == "pairs" for s in manifest["shards"]):
            rows = load_rows(round_dir, "pairs", ["prompt", "chosen", "rejected"], manifest).to_pylist()
        else:  # a round from before pairs/ (or one with none): the products' own pairing rule
            by_problem: dict[str, dict[str, list]] = defaultdict(lambda: {"sft": [], "rejected": []})
            for kind in ("sft", "rejected"):
                for row in load_rows(round_dir, kind, manifest=manifest).to_pylist():
                    by_problem[row["problem_id"]][kind].append(row)
            rows = [p for rows in by_problem.values() for p in pair_rows(rows["sft"], rows["rejected"], PairsConfig())]
        per_round.append([{k: [{"role": m["role"], "content": m["content"]} for m in r[k]]
                           for k in ("prompt", "chosen", "rejected")} for r in rows])
    return _with_replay(per_round, cfg.replay, random.Random(f"distill-pairs|{cfg.seed}"))


def _tokenizer(base: str):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(base)
    if tokenizer.pad_token_id is None:  # many chat models ship without one; padding is masked anyway
        tokenizer.pad_token = tokenizer.eos_token
    if not tokenizer.chat_template:
        log.warning("%s has no chat template: using selfplay.distill_trl.FALLBACK_CHAT_TEMPLATE", base)
        tokenizer.chat_template = FALLBACK_CHAT_TEMPLATE
    return tokenizer


def sft_dataset(kept: list[tuple[list[int], int]]):
    """(token ids, prompt length) rows as TRL's input: `input_ids` and a `completion_mask`."""
    from datasets import Dataset

    return Dataset.from_dict({"input_ids": [ids for ids, _ in kept],
                              "completion_mask": [[0] * n + [1] * (len(ids) - n) for ids, n in kept]})


# ------------------------------------------------------------------------------ one trainer


def _training_args(cfg, steps: int, per_device_batch: int, output_dir: str, device: str, dtype: str, save_steps: int | None):
    """The settings every TRL trainer here shares: the loop's optimizer and schedule, no extras."""
    scheduler = {"cosine": ("cosine_with_min_lr", {"min_lr_rate": 0.1}), "linear": ("linear", {}),
                 "constant": ("constant_with_warmup", {})}[cfg.schedule]
    return dict(
        output_dir=output_dir, max_steps=steps, per_device_train_batch_size=per_device_batch, learning_rate=cfg.lr,
        lr_scheduler_type=scheduler[0], lr_scheduler_kwargs=scheduler[1], warmup_steps=min(cfg.warmup_steps, steps // 2),
        weight_decay=0.01, adam_beta2=0.98, max_grad_norm=1.0, seed=cfg.seed, data_seed=cfg.seed,
        bf16=dtype == "bfloat16", use_cpu=device == "cpu", gradient_checkpointing=cfg.gradient_checkpointing,
        logging_steps=max(1, min(50, steps // 10)), report_to="none", disable_tqdm=True,
        # Per-step overheads that buy nothing here: no eval, no worker processes for a tokenized list.
        eval_strategy="no", dataloader_num_workers=0, dataloader_pin_memory=device == "cuda",
        save_strategy="steps" if save_steps else "no", save_steps=save_steps or 500, save_total_limit=2,
        include_num_input_tokens_seen="non_padding", ddp_find_unused_parameters=False,
        **({"fsdp": "full_shard auto_wrap", "fsdp_config": {"version": 2}} if cfg.fsdp else {}),
    )


def build_trainer(cfg, role: str, output_dir: str, save_steps: int | None = None, callbacks=(), workers: int = 1):
    """A ready TRL trainer for `role` ("solver" or "critic", critic=separate) and what it will learn;
    `workers` processes (DDP) share each batch of distill.batch_size. NothingToLearn when the rounds
    give no pair (dpo) or no example that fits max_length."""
    import torch
    from transformers import AutoModelForCausalLM

    from selfplay.distill import _device, gather

    base = cfg.critic_base_model if role == "critic" else cfg.base_model
    device, dtype = _device(cfg)
    torch.set_num_threads(cfg.threads)
    tokenizer = _tokenizer(base)
    model = AutoModelForCausalLM.from_pretrained(base, dtype=getattr(torch, dtype))
    peft_config = None
    if cfg.lora_rank:
        from peft import LoraConfig

        peft_config = LoraConfig(r=cfg.lora_rank, lora_alpha=2 * cfg.lora_rank, target_modules="all-linear",
                                 lora_dropout=0.0, task_type="CAUSAL_LM")
    if cfg.method == "dpo":
        from datasets import Dataset
        from trl import DPOConfig, DPOTrainer

        pairs = preference_pairs(cfg)
        if not pairs:
            raise NothingToLearn("no preference pairs")
        info = {"examples": len(pairs), "kept_examples": len(pairs), "dropped_examples": 0}
        steps = cfg.train_config(len(pairs)).steps
        batch = max(1, min(cfg.batch_size, len(pairs)) // workers)
        args = DPOConfig(**_training_args(cfg, steps, batch, output_dir, device, dtype, save_steps),
                         beta=cfg.dpo_beta, max_length=cfg.max_length)
        trainer = DPOTrainer(model=model, args=args, train_dataset=Dataset.from_list(pairs), processing_class=tokenizer,
                             peft_config=peft_config, callbacks=list(callbacks))
        return _quiet(trainer), info | {"steps": steps, "batch": batch, "tokenizer": tokenizer, "device": device, "dtype": dtype}
    from trl import SFTConfig, SFTTrainer

    from selfplay.train import full_batches, tokenize, too_long

    data = gather(cfg)
    examples = data["critic"] if role == "critic" else data["solver"] + (data["critic"] if cfg.critic == "shared" else [])
    kept, dropped = tokenize(tokenizer, examples, cfg.max_length)
    if not kept:
        raise NothingToLearn(too_long(len(examples), cfg.max_length) if examples else "no accepted rows")
    info = {"examples": len(examples), "kept_examples": len(kept), "dropped_examples": dropped}
    steps = cfg.train_config(len(examples)).steps  # as the loop counts them: before over-long ones are dropped
    if len(kept) < workers:  # each worker takes one per step: the few there are, repeated (the same gradient)
        kept = (kept * workers)[:workers]
    batch = max(1, min(cfg.batch_size, len(kept)) // workers)
    if not cfg.packing:  # the whole run's batches in order, one epoch of `steps` batches read in sequence
        kept = [kept[i] for b in full_batches(kept, batch * workers, steps, cfg.seed) for i in b]
    args = SFTConfig(**_training_args(cfg, steps, batch, output_dir, device, dtype, save_steps),
                     max_length=cfg.max_length, completion_only_loss=True, packing=cfg.packing,
                     train_sampling_strategy="random" if cfg.packing else "sequential", dataset_num_proc=None)
    trainer_class = SFTTrainer if device == "cuda" else _cpu_sft_trainer()
    trainer = trainer_class(model=model, args=args, train_dataset=sft_dataset(kept), processing_class=tokenizer,
                            peft_config=peft_config, callbacks=list(callbacks))
    return _quiet(trainer), info | {"steps": steps, "batch": batch, "tokenizer": tokenizer, "device": device, "dtype": dtype}


def _cpu_sft_trainer():
    """SFTTrainer whose loss is the model's own cross-entropy over its logits, for CPUs.

    TRL's loss goes through its fused LM head, which scores the positions in tiles without building
    the logits (a memory saving for large vocabularies on GPU, where a Triton kernel folds each tile
    and only the labelled positions are scored). Without Triton it scores every position with
    separate torch ops and recomputes the projection in backward: on the tiny model that was 13 % of
    each step (TRL 1.19x the loop's time per step; 1.06x with this loss, the same loss values). The
    loss is the same: summed over the labelled tokens, divided by their count over the whole batch
    (`num_items_in_batch`, every rank's), and scaled by the ranks as DDP averages gradients.
    TRL's entropy and token-accuracy metrics are not logged here."""
    import torch
    import torch.nn.functional as F
    from trl import SFTTrainer

    class CpuSFTTrainer(SFTTrainer):
        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            labels = inputs["labels"][:, 1:]
            outputs = model(**{k: v for k, v in inputs.items() if k != "labels"}, use_cache=False)
            logits = outputs.logits[:, :-1]
            loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)), labels.reshape(-1), ignore_index=-100, reduction="sum")
            count = num_items_in_batch if num_items_in_batch is not None else (labels != -100).sum()
            loss = loss / torch.as_tensor(count, device=loss.device).clamp(min=1)
            if self.args.average_tokens_across_devices and num_items_in_batch is not None:
                loss = loss * self.accelerator.num_processes
            return (loss, outputs) if return_outputs else loss

    return CpuSFTTrainer


def _quiet(trainer):
    """Without the printer of every log dict (disable_tqdm puts one in): distill.json has the curve."""
    from transformers.trainer_callback import PrinterCallback

    trainer.remove_callback(PrinterCallback)
    return trainer


def run_numbers(trainer, info: dict[str, Any], seconds: float, workers: int) -> dict[str, Any]:
    """distill.json's training numbers from a finished trainer (the loop's keys, where they exist)."""
    history = trainer.state.log_history
    curve = [(h["step"], round(h["loss"], 4)) for h in history if "loss" in h]
    examples_seen = info["steps"] * info["batch"] * max(1, workers)
    return {"device": info["device"], "dtype": info["dtype"], "examples": info["examples"],
            "kept_examples": info["kept_examples"], "dropped_examples": info["dropped_examples"],
            "steps": trainer.state.global_step, "epochs": round(examples_seen / max(1, info["kept_examples"]), 3),
            "tokens": int(trainer.state.num_input_tokens_seen or 0), "train_seconds": round(seconds, 2),
            "sharded": trainer.is_fsdp_enabled,
            "loss_curve": curve, "final_loss": curve[-1][1] if curve else None}


def save_model(trainer, tokenizer, target: Path, state_dict: dict | None = None) -> None:
    """The trained model as a plain transformers directory (LoRA adapters merged into the weights);
    `state_dict`: the whole weights gathered from FSDP shards."""
    model = trainer.accelerator.unwrap_model(trainer.model)
    if hasattr(model, "merge_and_unload"):
        model = model.merge_and_unload()
    model.save_pretrained(target, state_dict=state_dict)
    tokenizer.save_pretrained(target)
    model.generation_config.save_pretrained(target)


def fine_tune_in_process(cfg, role: str, log_fn: Callable[[str], None] | None) -> dict[str, Any]:
    """Train in this process; the finished model in out_dir's partial directory."""
    out_dir = cfg.critic_out_dir if role == "critic" else cfg.out_dir
    quiet_progress_bars()
    with tempfile.TemporaryDirectory(prefix="selfplay-trl-") as scratch:
        trainer, info = build_trainer(cfg, role, scratch, callbacks=[progress_callback(log_fn)])
        if log_fn:
            log_fn(f"trl {cfg.method}: {info['kept_examples']} examples, {info['steps']} steps of {info['batch']}")
        started = time.perf_counter()
        trainer.train()
        numbers = run_numbers(trainer, info, time.perf_counter() - started, 1)
        partial = partial_dir(Path(out_dir))
        save_model(trainer, info["tokenizer"], partial)
    return numbers | {"partial": partial, "trainer": "trl", "method": cfg.method, "workers": 0}


# ------------------------------------------------------------------------------ logging (here and in Ray Train workers)


def progress_callback(log_fn: Callable[[str], None] | None):
    """A callback: the loop's progress line (step, loss, tokens/s, elapsed, eta) at most every
    PROGRESS_EVERY_S, and at the last step; from rank 0 only. The Trainer logs the last step too
    (it would only when logging_steps divides the steps), so the loss curve ends there, as the loop's does."""
    from transformers import TrainerCallback

    from selfplay.train import progress_line

    class Progress(TrainerCallback):
        def on_train_begin(self, args, state, control, **kwargs):
            self.started = self.last = time.perf_counter()
            self.first_step, self.first_tokens = state.global_step, state.num_input_tokens_seen

        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step >= state.max_steps:
                control.should_log = True

        def on_log(self, args, state, control, logs=None, **kwargs):
            now = time.perf_counter()
            if log_fn is None or not state.is_world_process_zero or "loss" not in (logs or {}):
                return
            if now - self.last >= PROGRESS_EVERY_S or state.global_step >= state.max_steps:
                self.last = now
                log_fn(progress_line(state.global_step, state.max_steps, logs["loss"],
                                     state.num_input_tokens_seen - self.first_tokens, now - self.started, self.first_step))

    return Progress()


def quiet_progress_bars() -> None:
    """No progress bars (loading weights, TRL's dataset passes, saving): in a log they are a garbled
    line each, for work that takes a second; the progress callback's lines say how training goes."""
    import datasets
    import transformers

    datasets.disable_progress_bars()
    transformers.utils.logging.disable_progress_bar()
