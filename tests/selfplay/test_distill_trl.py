"""Distillation through TRL (selfplay.distill_trl): SFTTrainer and DPOTrainer on the tiny model, in
this process and as a Ray Train job on 2 CPU workers (gloo), a worker killed mid-run included."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import threading
import time
from pathlib import Path

import pytest

from selfplay import pipeline
from selfplay.actors import ModelConfig
from selfplay.distill import DistillConfig, distill
from selfplay.distill_ray import checkpoint_root
from selfplay.distill_trl import FALLBACK_CHAT_TEMPLATE, _tokenizer, build_trainer, preference_pairs
from selfplay.engines.config import EngineConfig
from selfplay.problems import SourceConfig, TaskSpec
from selfplay.prompts import format_trace, parse_critic
from selfplay.shards import RoundWriter, ShardLimits
from selfplay.strategies import Attempt, Outcome
from selfplay.tasks import make_problems, reference_solution
from verifiers import Verdict

from tests.selfplay.test_distill import write_round


def _cfg(model, rounds, out, **kw) -> DistillConfig:
    settings = {"base_model": str(model), "rounds": [str(r) for r in rounds], "out_dir": str(out), "trainer": "trl",
                "epochs": 1, "batch_size": 16, "lr": 3e-3, "warmup_steps": 3, "threads": 1, "critic_ratio": 1.0}
    return DistillConfig(**(settings | kw))


def _round_without(out_dir: Path, k: int, problems: int, *, right: bool = True, pairs: bool = True) -> str:
    """A committed round like test_distill.write_round's, with no verified trace (right=False) or
    written before pairs/ existed (pairs=False)."""
    cfg = pipeline.RoundConfig(solver=ModelConfig(EngineConfig(model="m")), round=k,
                               source=SourceConfig(kind="tasks", tasks=[TaskSpec("addition", problems, 1)]),
                               output=pipeline.OutputConfig(out_dir=str(out_dir)))
    kinds = {kind: schema for kind, schema in pipeline.KINDS.items() if pairs or kind != "pairs"}
    writer = RoundWriter(cfg.round_dir, kinds, ShardLimits(1000, 2**26, 3600))
    models = {"solver": {"model_id": "m"}, "critic": {"model_id": "m"}}
    for p in make_problems("addition", problems, seed=k, difficulty=1):
        wrong = Attempt(format_trace(["1+1+0=3"], "3"), 12, "stop", 2, 0, Verdict(False, "step 0 wrong", first_wrong_step=0),
                        parse_critic("Verdict: correct"), reject_reason="verifier: wrong")
        good = Attempt(reference_solution(p).trace(), 20, "stop", 1, 0, Verdict(True, "ok"), parse_critic("Verdict: correct"),
                       accepted=True)
        attempts = [good, wrong] if right else [wrong]
        rows = pipeline.outcome_rows(Outcome(p, attempts, "budget", samples=len(attempts), verified=int(right)), cfg, models)
        writer.add(p.id, {kind: r for kind, r in rows.items() if kind in kinds})
    writer.close()
    return cfg.round_dir


def test_sft_trains_only_on_the_assistant_tokens_and_learns(random_model_dir, tmp_path):
    r1 = write_round(tmp_path, 1, problems=16)
    cfg = _cfg(random_model_dir, [r1], tmp_path / "trl", min_steps=30, max_steps=30)
    trainer, info = build_trainer(cfg, "solver", str(tmp_path / "scratch"))
    tokenizer = info["tokenizer"]
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(4)])
    for ids, labels in zip(batch["input_ids"].tolist(), batch["labels"].tolist()):
        learnt = tokenizer.decode([t for t, l in zip(ids, labels) if l != -100], skip_special_tokens=False)
        text = tokenizer.decode([t for t in ids if t != tokenizer.pad_token_id], skip_special_tokens=False)
        assert learnt.endswith(tokenizer.eos_token) and "<|user|>" not in learnt
        prompt = text[: len(text) - len(learnt)]
        assert prompt.endswith("<|assistant|>")       # everything up to the reply is masked, nothing after it
    report = distill(cfg)
    saved = json.loads((tmp_path / "trl" / "distill.json").read_text())
    assert saved["trainer"] == "trl" and saved["steps"] == 30 and saved["examples"] == 32
    first, last = report["loss_curve"][0][1], report["loss_curve"][-1][1]
    assert last < first * 0.7, report["loss_curve"]


def test_sft_batches_are_the_loops_batches_in_the_loops_order(random_model_dir, tmp_path):
    from selfplay.distill import gather
    from selfplay.train import full_batches, tokenize

    r1 = write_round(tmp_path, 1, problems=24)
    cfg = _cfg(random_model_dir, [r1], tmp_path / "trl", min_steps=12, max_steps=12, batch_size=8)
    trainer, info = build_trainer(cfg, "solver", str(tmp_path / "scratch"))
    data = gather(cfg)
    kept, _ = tokenize(info["tokenizer"], data["solver"] + data["critic"], cfg.max_length)
    loop = full_batches(kept, 8, 12, cfg.seed)  # the loop's batches (test_train checks that they are)
    seen = [batch["input_ids"].tolist() for batch in trainer.get_train_dataloader()]
    assert len(seen) == 12
    for rows, indices in zip(seen, loop):
        expected = [kept[i][0] for i in indices]
        assert [ids[: len(e)] for ids, e in zip(rows, expected)] == expected  # then padding


def test_the_cpu_loss_is_trls_loss(random_model_dir, tmp_path):
    """On CPU the SFT loss skips TRL's fused LM head (see _cpu_sft_trainer): the same number."""
    from trl import SFTTrainer

    r1 = write_round(tmp_path, 1, problems=8)
    trainer, _ = build_trainer(_cfg(random_model_dir, [r1], tmp_path / "trl"), "solver", str(tmp_path / "scratch"))
    assert type(trainer) is not SFTTrainer
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(6)])
    ours = trainer.compute_loss(trainer.model, dict(batch))
    trls = SFTTrainer.compute_loss(trainer, trainer.model, dict(batch))
    assert abs(ours.item() - trls.item()) < 1e-5
    n = int((batch["labels"][:, 1:] != -100).sum())
    assert abs(trainer.compute_loss(trainer.model, dict(batch), num_items_in_batch=2 * n).item() - ours.item() / 2) < 1e-5


def test_a_round_with_no_accepted_rows_carries_the_checkpoint_over(random_model_dir, tmp_path):
    r1 = _round_without(tmp_path, 1, problems=4, right=False)
    out = tmp_path / "same"
    for trainer in ("loop", "trl"):
        report = distill(_cfg(random_model_dir, [r1], out, trainer=trainer, critic="none"))
        assert report["role"] == "unchanged" and report["reason"].startswith(f"nothing to distil in {r1} (no accepted rows)")
        assert (out / "model.safetensors").read_bytes() == (Path(random_model_dir) / "model.safetensors").read_bytes()


def test_a_round_whose_every_example_is_over_max_length_carries_the_checkpoints_over(ray_cluster, random_model_dir,
                                                                                      tmp_path):
    """The loop, TRL in this process and TRL on Ray Train (where the worker finds it out) alike; a
    separate critic's model too."""
    r1 = write_round(tmp_path, 1, problems=4)
    for trainer, workers in (("loop", 0), ("trl", 0), ("trl", 1)):
        out, critic_out = tmp_path / f"{trainer}{workers}", tmp_path / f"{trainer}{workers}-critic"
        report = distill(_cfg(random_model_dir, [r1], out, trainer=trainer, workers=workers, max_length=8, critic="separate",
                              critic_base_model=str(random_model_dir), critic_out_dir=str(critic_out)))
        for path, role_report in ((out, report), (critic_out, report["critic_model"])):
            assert role_report["role"] == "unchanged", (trainer, workers, role_report)
            assert "longer than max_length=8 tokens" in role_report["reason"]
            assert json.loads((path / "distill.json").read_text())["reason"] == role_report["reason"]
            assert (path / "model.safetensors").read_bytes() == (Path(random_model_dir) / "model.safetensors").read_bytes()
        assert not checkpoint_root(str(out)).exists()


def test_a_run_logs_the_loops_progress_line_and_always_at_its_last_step(random_model_dir, tmp_path):
    """23 steps: TRL logs every 2nd step, so the Trainer itself would not log the last one."""
    lines: list[str] = []
    report = distill(_cfg(random_model_dir, [write_round(tmp_path, 1, problems=4)], tmp_path / "m", min_steps=23,
                          max_steps=23), log_fn=lines.append)
    progress = [line for line in lines if line.startswith("step ")]
    assert progress and progress[-1] == lines[-1] and lines[-1].startswith("step 23/23  loss "), lines
    assert all(re.fullmatch(r"step \d+/23  loss \d+\.\d{4}  [\d,]+ tok/s  elapsed \d+s  eta \d+s", p) for p in progress)
    assert report["loss_curve"][-1][0] == 23   # the curve ends at the last step, as the loop's does


def test_fewer_examples_than_workers_are_repeated_so_each_worker_has_one(random_model_dir, tmp_path):
    r1 = write_round(tmp_path, 1, problems=1)
    cfg = _cfg(random_model_dir, [r1], tmp_path / "m", critic="none", min_steps=2, max_steps=2)
    trainer, info = build_trainer(cfg, "solver", str(tmp_path / "scratch"), workers=4)
    assert info["kept_examples"] < 4 and info["batch"] == 1
    assert len(trainer.train_dataset) == 2 * 4  # two steps of one example for each of the 4 workers


def test_a_base_model_without_a_chat_template_gets_the_fallback(random_model_dir, tmp_path):
    base = tmp_path / "base"
    shutil.copytree(random_model_dir, base)
    (base / "chat_template.jinja").unlink(missing_ok=True)
    config = json.loads((base / "tokenizer_config.json").read_text())
    config.pop("chat_template", None)
    (base / "tokenizer_config.json").write_text(json.dumps(config))
    assert _tokenizer(str(base)).chat_template == FALLBACK_CHAT_TEMPLATE
    r1 = write_round(tmp_path, 1, problems=4)
    distill(_cfg(base, [r1], tmp_path / "out", min_steps=2, max_steps=2, batch_size=4))
    from transformers import AutoTokenizer

    saved = AutoTokenizer.from_pretrained(tmp_path / "out")    # the engines render prompts the same way
    assert saved.chat_template == FALLBACK_CHAT_TEMPLATE


def test_dpo_learns_the_rounds_pairs_and_builds_them_for_a_round_without(random_model_dir, tmp_path):
    with_pairs = _round_without(tmp_path / "a", 1, problems=8)
    without = _round_without(tmp_path / "b", 1, problems=8, pairs=False)
    written = preference_pairs(_cfg(random_model_dir, [with_pairs], tmp_path / "m", method="dpo"))
    built = preference_pairs(_cfg(random_model_dir, [without], tmp_path / "m", method="dpo"))
    assert len(written) == 8 and built == written    # one pairing rule: selfplay.products.pair_rows
    report = distill(_cfg(random_model_dir, [with_pairs], tmp_path / "dpo", method="dpo", min_steps=12, max_steps=12,
                          batch_size=8))
    assert report["method"] == "dpo" and report["steps"] == 12 and report["role"] == "solver"
    assert report["loss_curve"][-1][1] < report["loss_curve"][0][1] * 0.7, report["loss_curve"]
    only_right = write_round(tmp_path / "c", 1, problems=2)    # pairs exist; a round of right traces only has none
    assert preference_pairs(_cfg(random_model_dir, [only_right], tmp_path / "m", method="dpo"))


def test_settings_that_need_trl_are_refused_with_the_loop(random_model_dir, tmp_path):
    with pytest.raises(ValueError, match="need trainer=trl"):
        _cfg(random_model_dir, [tmp_path], tmp_path / "m", trainer="loop", method="dpo")
    with pytest.raises(ValueError, match="workers=2: need trainer=trl"):
        _cfg(random_model_dir, [tmp_path], tmp_path / "m", trainer="loop", workers=2)
    with pytest.raises(ValueError, match="needs gpus_per_worker > 0"):
        _cfg(random_model_dir, [tmp_path], tmp_path / "m", workers=2, device="cuda")
    # accelerate shards only over GPUs: on CPU workers fsdp would silently train DDP
    with pytest.raises(ValueError, match="fsdp shards full SFT over GPU workers"):
        _cfg(random_model_dir, [tmp_path], tmp_path / "m", workers=2, fsdp=True)
    with pytest.raises(ValueError, match="fsdp shards full SFT over GPU workers"):
        _cfg(random_model_dir, [tmp_path], tmp_path / "m", workers=2, gpus_per_worker=1, fsdp=True, lora_rank=8)
    assert _cfg(random_model_dir, [tmp_path], tmp_path / "m", workers=2, gpus_per_worker=1, fsdp=True).fsdp
    with pytest.raises(ValueError, match="split evenly over 3 workers"):
        _cfg(random_model_dir, [tmp_path], tmp_path / "m", workers=3)
    with pytest.raises(ValueError, match="trainer must be one of"):
        _cfg(random_model_dir, [tmp_path], tmp_path / "m", trainer="accelerate")


@pytest.mark.slow
def test_ray_train_job_on_two_cpu_workers_distils(ray_cluster, random_model_dir, tmp_path):
    """17 s on a quiet 2-core machine (session 10), 85 s on a loaded one: mostly the worker group's start-up."""
    r1 = write_round(tmp_path, 1, problems=16)
    out = tmp_path / "ray"
    report = distill(_cfg(random_model_dir, [r1], out, workers=2, min_steps=20, max_steps=20, checkpoint_every=10))
    assert report["workers"] == 2 and report["steps"] == 20 and report["resumed_from_step"] == 0
    assert report["epochs"] == pytest.approx(20 * 16 / 32)    # 8 examples per worker and step
    assert report["loss_curve"][-1][1] < report["loss_curve"][0][1] * 0.8, report["loss_curve"]
    assert (out / "model.safetensors").exists() and not checkpoint_root(str(out)).joinpath("solver").exists()


def _our_train_workers() -> list:
    """Ray Train worker processes of this test session's own Ray (descendants of this process)."""
    import psutil

    return [p for p in psutil.Process(os.getpid()).children(recursive=True)
            if "RayTrainWorker" in " ".join(p.cmdline())]


@pytest.mark.slow
def test_a_killed_worker_restarts_from_the_last_checkpoint(ray_cluster, random_model_dir, tmp_path):
    """About 50 s on a quiet 2-core machine (session 10), 2.5 min on a loaded one: two worker-group start-ups."""
    r1 = write_round(tmp_path, 1, problems=16)
    out = tmp_path / "killed"
    # Enough steps that the kill, after the second checkpoint (step 20), lands mid-run: with 80, the
    # workers (faster once TRL took the loop's batches) sometimes finished before Ray saw the kill.
    cfg = _cfg(random_model_dir, [r1], out, workers=2, min_steps=300, max_steps=300, checkpoint_every=10, max_failures=1)
    result: dict = {}
    run = threading.Thread(target=lambda: result.update(report=distill(cfg)))
    run.start()
    checkpoints = checkpoint_root(str(out)) / "solver"
    deadline = time.monotonic() + 400
    # A checkpoint directory appears while it is being written; once a second one does, the first
    # is registered with Ray Train and a restart must start from it (or a later one).
    while len(list(checkpoints.glob("checkpoint_*"))) < 2 and time.monotonic() < deadline and run.is_alive():
        time.sleep(0.5)
    workers = _our_train_workers()
    assert workers and len(list(checkpoints.glob("checkpoint_*"))) >= 2, "no checkpoint before the deadline"
    os.kill(workers[-1].pid, signal.SIGKILL)
    run.join(timeout=540)
    report = result["report"]
    assert report["steps"] == 300 and report["resumed_from_step"] >= 10, report
    assert (out / "model.safetensors").exists()
