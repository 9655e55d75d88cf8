"""Supervised fine-tuning: (chat messages, assistant text) examples -> loss on the assistant tokens.

The one training loop of the project: the bootstrap trains the reference model from scratch with
it, and distillation fine-tunes the next checkpoint on verified traces with it.

    report = train_sft(model, tokenizer, examples, TrainConfig(steps=500), log=print)

Batches are length-bucketed (examples of similar length share a batch) rather than packed: packing
would need per-document attention masks to keep examples from seeing each other, and bucketing
already keeps padding small. The loss is the mean over assistant tokens (prompt and padding are
masked), so a batch of short answers counts as much per token as one of long traces.
"""

from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

BUCKET_BATCHES = 16
"""Examples are sorted by length within windows of this many batches: enough to even out lengths,
few enough that each batch still mixes tasks."""


@dataclass(frozen=True)
class Example:
    messages: list[dict[str, str]]
    """The prompt as chat messages (rendered by the tokenizer's chat template)."""
    completion: str
    """The assistant text to learn; the end-of-turn token is appended."""


@dataclass(frozen=True)
class TrainConfig:
    steps: int = 1000
    """Optimizer steps (examples are reused epoch after epoch as needed)."""
    batch_size: int = 64
    """Examples per step."""
    lr: float = 3e-3
    """Peak learning rate (AdamW)."""
    min_lr_ratio: float = 0.1
    """The schedule decays to lr * min_lr_ratio at the last step."""
    warmup_steps: int = 50
    """Linear warmup from 0 to lr."""
    schedule: str = "cosine"
    """Decay after warmup: "cosine", "linear" or "constant"."""
    weight_decay: float = 0.01
    """AdamW weight decay (not applied to norms and biases)."""
    grad_clip: float = 1.0
    """Clip the global gradient norm to this (0 = no clipping)."""
    max_length: int = 512
    """Examples longer than this many tokens (prompt + completion) are dropped, and counted."""
    seed: int = 0
    """Seeds data order and dropout; with the same model init, the run is deterministic."""
    threads: int = 2
    """torch intra-op threads on CPU."""
    log_every: int = 50
    """Progress line (and loss-curve point) every this many steps."""

    def __post_init__(self):
        for name in ("steps", "batch_size", "max_length", "threads", "log_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"TrainConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.lr <= 0:
            raise ValueError(f"TrainConfig.lr must be > 0, got {self.lr}")
        if not 0 <= self.min_lr_ratio <= 1:
            raise ValueError(f"TrainConfig.min_lr_ratio must be in [0, 1], got {self.min_lr_ratio}")
        if self.warmup_steps < 0 or self.weight_decay < 0 or self.grad_clip < 0:
            raise ValueError("TrainConfig.warmup_steps, weight_decay and grad_clip must be >= 0")
        if self.schedule not in ("cosine", "linear", "constant"):
            raise ValueError(f"TrainConfig.schedule must be cosine, linear or constant; got {self.schedule!r}")


@dataclass
class TrainReport:
    steps: int
    examples: int
    """Distinct examples available (after dropping over-long ones)."""
    dropped: int
    """Examples longer than max_length."""
    tokens: int = 0
    """Tokens processed (prompt + completion, no padding)."""
    target_tokens: int = 0
    """Assistant tokens the loss was computed on."""
    seconds: float = 0.0
    loss_curve: list[tuple[int, float]] = field(default_factory=list)
    """(step, mean loss since the previous point)."""

    @property
    def final_loss(self) -> float | None:
        return self.loss_curve[-1][1] if self.loss_curve else None


def learning_rate(step: int, config: TrainConfig) -> float:
    """The learning rate at 0-based `step`: linear warmup, then the configured decay."""
    if step < config.warmup_steps:
        return config.lr * (step + 1) / config.warmup_steps
    if config.schedule == "constant":
        return config.lr
    progress = (step - config.warmup_steps) / max(1, config.steps - config.warmup_steps - 1)
    shape = 0.5 * (1 + math.cos(math.pi * min(1.0, progress))) if config.schedule == "cosine" else 1 - min(1.0, progress)
    return config.lr * (config.min_lr_ratio + (1 - config.min_lr_ratio) * shape)


class NothingToLearn(ValueError):
    """No example to train on: none given, or every one longer than max_length. A distillation
    carries its base model over; the bootstrap, which must train, stops with this message."""


def tokenize(tokenizer, examples: Sequence[Example], max_length: int) -> tuple[list[tuple[list[int], int]], int]:
    """(token ids, prompt length) per example that fits in `max_length`, and how many did not."""
    prompts = [tokenizer.apply_chat_template(e.messages, tokenize=False, add_generation_prompt=True) for e in examples]
    completions = [e.completion + tokenizer.eos_token for e in examples]
    prompt_ids = tokenizer(prompts, add_special_tokens=False)["input_ids"]
    completion_ids = tokenizer(completions, add_special_tokens=False)["input_ids"]
    kept = [(p + c, len(p)) for p, c in zip(prompt_ids, completion_ids) if len(p) + len(c) <= max_length]
    return kept, len(examples) - len(kept)


def too_long(examples: int, max_length: int) -> str:
    return f"all {examples} examples are longer than max_length={max_length} tokens"


def _batches(data: list[tuple[list[int], int]], batch_size: int, rng: random.Random):
    """Endless length-bucketed batches: shuffle, sort by length within windows, shuffle batches."""
    while True:
        order = list(range(len(data)))
        rng.shuffle(order)
        window = batch_size * BUCKET_BATCHES
        batches = []
        for start in range(0, len(order), window):
            chunk = sorted(order[start : start + window], key=lambda i: len(data[i][0]))
            batches += [chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size)]
        rng.shuffle(batches)
        yield from batches


def full_batches(data: list[tuple[list[int], int]], batch_size: int, steps: int, seed: int) -> list[list[int]]:
    """The first `steps` full batches of the loop's order (`_batches` with the loop's seed): how
    another trainer, whose batches are a fixed size, sees the loop's length-grouped batches in the
    loop's order. The loop's one short batch per epoch (when the examples are not a multiple of the
    batch) is left out."""
    if not 1 <= batch_size <= len(data):
        raise ValueError(f"a batch of {batch_size} cannot be filled from {len(data)} examples")
    batches, out = _batches(data, batch_size, random.Random(seed)), []
    while len(out) < steps:  # every epoch has a full batch, since batch_size <= len(data)
        batch = next(batches)
        if len(batch) == batch_size:
            out.append(batch)
    return out


def _collate(data, indices, pad_id: int):
    import torch

    width = max(len(data[i][0]) for i in indices)
    ids = torch.full((len(indices), width), pad_id, dtype=torch.long)
    labels = torch.full((len(indices), width), -100, dtype=torch.long)
    mask = torch.zeros((len(indices), width), dtype=torch.long)
    for row, i in enumerate(indices):
        tokens, prompt_len = data[i]
        ids[row, : len(tokens)] = torch.tensor(tokens)
        labels[row, prompt_len : len(tokens)] = ids[row, prompt_len : len(tokens)]
        mask[row, : len(tokens)] = 1
    return ids, labels, mask


def _optimizer(model, config: TrainConfig):
    import torch

    decay = [p for n, p in model.named_parameters() if p.requires_grad and p.dim() >= 2]
    rest = [p for n, p in model.named_parameters() if p.requires_grad and p.dim() < 2]
    groups = [{"params": decay, "weight_decay": config.weight_decay}, {"params": rest, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=config.lr, betas=(0.9, 0.98), eps=1e-8)


def train_sft(
    model, tokenizer, examples: Sequence[Example], config: TrainConfig, log: Callable[[str], None] | None = print,
    threads: Callable[[], int] | None = None,
) -> TrainReport:
    """Train `model` in place on `examples`; returns what was trained and how it went.

    `threads`, when given, is asked before each step how many CPU threads to use now (a job
    running beside this one holds the others); otherwise `config.threads` throughout."""
    import torch
    import torch.nn.functional as F

    if not examples:
        raise NothingToLearn("no examples")
    torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    data, dropped = tokenize(tokenizer, examples, config.max_length)
    if not data:
        raise NothingToLearn(too_long(len(examples), config.max_length))
    report = TrainReport(steps=config.steps, examples=len(data), dropped=dropped)
    optimizer = _optimizer(model, config)
    device = next(model.parameters()).device
    batches = _batches(data, min(config.batch_size, len(data)), random.Random(config.seed))
    model.train()
    start = time.perf_counter()
    window_loss, window_steps = 0.0, 0
    using = config.threads
    for step in range(config.steps):
        if threads is not None and threads() != using:
            using = threads()
            torch.set_num_threads(using)
        # Batches are built on the CPU and moved to wherever the model lives (CPU or GPU).
        ids, labels, mask = (t.to(device) for t in _collate(data, next(batches), tokenizer.pad_token_id))
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(step, config)
        logits = model(input_ids=ids, attention_mask=mask).logits
        loss = F.cross_entropy(logits[:, :-1].reshape(-1, logits.size(-1)), labels[:, 1:].reshape(-1), ignore_index=-100)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if config.grad_clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        optimizer.step()
        report.tokens += int(mask.sum())
        report.target_tokens += int((labels != -100).sum())
        window_loss += loss.item()
        window_steps += 1
        if (step + 1) % config.log_every == 0 or step + 1 == config.steps:
            report.loss_curve.append((step + 1, round(window_loss / window_steps, 4)))
            window_loss, window_steps = 0.0, 0
            if log:
                log(progress_line(step + 1, config.steps, report.loss_curve[-1][1], report.tokens, time.perf_counter() - start))
    report.seconds = round(time.perf_counter() - start, 2)
    model.eval()
    return report


def progress_line(step: int, total: int, loss: float, tokens: int, elapsed: float, first_step: int = 0) -> str:
    """The loop's and the TRL trainers' progress line; tokens and elapsed count from first_step (a
    resumed run's)."""
    eta = elapsed / max(1, step - first_step) * (total - step)
    return (f"step {step}/{total}  loss {loss:.4f}  {tokens / max(elapsed, 1e-9):,.0f} tok/s  "
            f"elapsed {elapsed:.0f}s  eta {eta:.0f}s")
