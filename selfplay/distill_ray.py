"""TRL distillation as a Ray Train job (distill.workers >= 1): ray.train.torch.TorchTrainer, DDP
(gloo on CPU, NCCL on GPU), or FSDP2 over GPU workers with distill.fsdp.

Every worker builds the same trainer (selfplay.distill_trl.build_trainer) and reads the rounds
itself (they must be on storage every node reaches, like out_dir), so only the config travels.
RayTrainReportCallback reports each Trainer checkpoint to Ray Train's storage beside out_dir
(<out_dir>.train/), and FailureConfig restarts the workers from the newest one when a worker dies.
Rank 0 reports the finished model as the last checkpoint (or, when the rounds give nothing to
learn, the reason); the driver copies it into out_dir's partial directory.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable

from selfplay.distill_trl import build_trainer, progress_callback, quiet_progress_bars, run_numbers, save_model
from selfplay.storage import partial_dir
from selfplay.train import NothingToLearn

RESULT = "result.json"
MODEL = "model"
NOTHING = "nothing_to_learn"
"""RESULT's key, in place of the numbers, when the rounds gave nothing to learn (and no MODEL)."""

RAY_TRAIN_SETTINGS = {
    # The controller checks on its workers this often (default 2 s): a finished job was noticed,
    # and its workers stopped, about 4 s after its last step; 0.2 s makes that about 1 s.
    "RAY_TRAIN_HEALTH_CHECK_INTERVAL_S": "0.2",
    # Ray Train's print() sends what code prints into a redirected stdout to its logger as well:
    # dill, hashing TRL's dataset functions for `datasets`, reads their globals from a disassembly
    # it prints into a captured stdout, and every worker printed that bytecode into the run's log.
    "RAY_TRAIN_ENABLE_PRINT_PATCH": "0",
    # One more actor process per job, polling for notices that a node will be preempted: a worker
    # lost with its node restarts from the newest checkpoint anyway (max_failures). Its start
    # logged a core-worker error about its constructor arguments in every job.
    "RAY_TRAIN_ENABLE_PREEMPTION_WATCHER": "0",
}
"""Environment of a Ray Train job started here (the driver's values win; Ray Train passes them on
to its controller and workers)."""


def train_worker(job: dict[str, Any]) -> None:
    """One Ray Train worker: build the trainer, resume from the job's newest checkpoint if there is
    one, train, and (rank 0) report the finished model as the last checkpoint. When there is nothing
    to learn (every rank reads the same rounds, so all know it), rank 0 reports the reason instead."""
    import ray.train
    from ray.train.huggingface.transformers import RayTrainReportCallback, prepare_trainer

    from selfplay.distill import DistillConfig

    quiet_progress_bars()
    _quiet_reports()
    cfg = DistillConfig(**job["cfg"])
    context = ray.train.get_context()
    scratch = tempfile.mkdtemp(prefix=f"selfplay-trl-rank{context.get_world_rank()}-")
    try:
        trainer, info = build_trainer(cfg, job["role"], scratch, save_steps=cfg.checkpoint_every, workers=cfg.workers,
                                      callbacks=[RayTrainReportCallback(), _skip_save_at_end(), progress_callback(_worker_log)])
    except NothingToLearn as nothing:
        _report_final({NOTHING: str(nothing)}, scratch, context.get_world_rank())
        return
    trainer = prepare_trainer(trainer)
    resume, resumed_from = None, 0
    checkpoint = ray.train.get_checkpoint()
    if checkpoint:
        restored = checkpoint.to_directory(os.path.join(scratch, "restored"))
        resume = os.path.join(restored, RayTrainReportCallback.CHECKPOINT_NAME)
        resumed_from = json.loads(Path(resume, "trainer_state.json").read_text())["global_step"]
    started = time.perf_counter()
    trainer.train(resume_from_checkpoint=resume)
    numbers = run_numbers(trainer, info, time.perf_counter() - started, cfg.workers) | {"resumed_from_step": resumed_from}
    # FSDP: every rank takes part in gathering the whole weights from their shards.
    state_dict = trainer.accelerator.get_state_dict(trainer.model) if cfg.fsdp else None
    if context.get_world_rank() == 0:
        save_model(trainer, info["tokenizer"], Path(scratch, "final", MODEL), state_dict)
    _report_final(numbers, scratch, context.get_world_rank())


def _report_final(numbers: dict[str, Any], scratch: str, rank: int) -> None:
    """Every rank reports (a report is collective); rank 0's carries the final checkpoint: the
    numbers, and the model when one was saved beside them."""
    import ray.train

    if rank == 0:
        final = Path(scratch, "final")
        final.mkdir(exist_ok=True)
        (final / RESULT).write_text(json.dumps(numbers))
        ray.train.report({"final": 1}, checkpoint=ray.train.Checkpoint.from_directory(str(final)))
    else:
        ray.train.report({"final": 1})
    shutil.rmtree(scratch, ignore_errors=True)


def _worker_log(line: str) -> None:
    """A Ray Train worker's log line: its stdout, which Ray forwards to the driver."""
    print(f"{time.strftime('%H:%M:%S')} selfplay.distill {line}", flush=True)


def _skip_save_at_end():
    """A callback: no Trainer checkpoint after the last step. The Trainer saves one there too (model
    and optimizer state: 76 GB for a 7B model in bf16), and rank 0 then reports the finished model
    on its own; only the checkpoints on the way are for restarts."""
    from transformers import TrainerCallback

    class SkipSaveAtEnd(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step >= state.max_steps:
                control.should_save = False

    return SkipSaveAtEnd()


def _quiet_reports() -> None:
    """Ray Train (2.60) logs each report at INFO, a 300-character line per checkpoint, through a
    logger named after its source file, so LoggingConfig's level does not reach it. Nothing
    happens if a later Ray moves that module."""
    import logging

    try:
        from ray.train.v2._internal.execution import context
    except ImportError:
        return
    logging.getLogger(context.__file__).setLevel(logging.WARNING)


def checkpoint_root(out_dir: str) -> Path:
    """Where a Ray Train job of out_dir keeps its checkpoints: beside it, on the same storage."""
    return Path(out_dir).absolute().parent / f"{Path(out_dir).name}.train"


def fine_tune_on_ray(cfg, role: str, log_fn: Callable[[str], None] | None) -> dict[str, Any]:
    """Train as a Ray Train job on cfg.workers workers; NothingToLearn (found by the workers) when
    there is nothing to learn."""
    import ray
    from ray.train import CheckpointConfig, FailureConfig, LoggingConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    out_dir = cfg.critic_out_dir if role == "critic" else cfg.out_dir
    if not ray.is_initialized():  # RAY_ADDRESS when set (a cluster), else a local Ray
        ray.init(log_to_driver=True)  # the workers' progress lines
    for name, value in RAY_TRAIN_SETTINGS.items():
        os.environ.setdefault(name, value)
    root = checkpoint_root(out_dir)
    gpus = cfg.gpus_per_worker
    # Workers run in their own directories: a relative local path would read as a hub id there.
    local = {k: str(Path(v).absolute()) for k in ("base_model", "critic_base_model", "out_dir", "critic_out_dir")
             if (v := getattr(cfg, k)) and Path(v).exists() or k.endswith("out_dir") and v}
    settings = asdict(cfg) | local | {"rounds": [r if "://" in r else str(Path(r).absolute()) for r in cfg.rounds]}
    job = TorchTrainer(
        train_worker, train_loop_config={"cfg": settings, "role": role},
        torch_config=TorchConfig(backend="nccl" if gpus else "gloo"),
        scaling_config=ScalingConfig(num_workers=cfg.workers, use_gpu=gpus > 0,
                                     resources_per_worker={"CPU": cfg.cpus_per_worker} | ({"GPU": gpus} if gpus else {})),
        run_config=RunConfig(name=role, storage_path=str(root), failure_config=FailureConfig(max_failures=cfg.max_failures),
                             checkpoint_config=CheckpointConfig(num_to_keep=2),
                             # Its INFO lines (worker group started, every checkpoint and report)
                             # crowd out the workers' progress lines; warnings and errors still show.
                             logging_config=LoggingConfig(log_level="WARNING")),
    )
    if log_fn:
        log_fn(f"trl {cfg.method} on Ray Train: {cfg.workers} worker(s) x {gpus:g} GPU, checkpoints in {root}")
    result = job.fit()
    partial = partial_dir(Path(out_dir))
    with result.checkpoint.as_directory() as final:
        numbers = json.loads(Path(final, RESULT).read_text())
        if NOTHING not in numbers:
            shutil.rmtree(partial, ignore_errors=True)
            shutil.copytree(Path(final, MODEL), partial)
    shutil.rmtree(root / role, ignore_errors=True)  # the job finished: its checkpoints are spent
    if root.exists() and not any(root.iterdir()):
        root.rmdir()
    if NOTHING in numbers:
        raise NothingToLearn(numbers[NOTHING])
    return numbers | {"partial": partial, "trainer": "trl", "method": cfg.method, "workers": cfg.workers}
