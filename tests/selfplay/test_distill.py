"""Distillation on round shards: which rows become examples, and a real fine-tune into a model dir."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from selfplay import pipeline
from selfplay.actors import ModelConfig
from selfplay.distill import DistillConfig, distill, gather, keep_checkpoint
from selfplay.engines.config import EngineConfig
from selfplay.problems import SourceConfig, TaskSpec
from selfplay.prompts import CRITIC_PREFIX, format_trace, parse_critic
from selfplay.shards import RoundWriter, ShardLimits
from selfplay.strategies import Attempt, Outcome
from selfplay.tasks import make_problems, reference_solution
from verifiers import Verdict

ROOT = Path(__file__).parents[2]


def write_round(out_dir: Path | str, k: int, problems: int, difficulty: int = 1) -> str:
    """A committed round with, per problem, one verified trace and one wrong trace (both judged),
    written through the pipeline's own row builder and shard writer; out_dir may be a URI."""
    cfg = pipeline.RoundConfig(solver=ModelConfig(EngineConfig(model="m")), round=k,
                               source=SourceConfig(kind="tasks", tasks=[TaskSpec("addition", problems, difficulty)]),
                               output=pipeline.OutputConfig(out_dir=str(out_dir)))
    writer = RoundWriter(cfg.round_dir, pipeline.KINDS, ShardLimits(1000, 2**26, 3600))
    models = {"solver": {"model_id": "m"}, "critic": {"model_id": "m"}}
    for p in make_problems("addition", problems, seed=k, difficulty=difficulty):
        right = reference_solution(p).trace()
        wrong = format_trace(["1+1+0=3"], "3")
        attempts = [
            Attempt(right, 20, "stop", 1, 0, Verdict(True, "ok"), parse_critic("Verdict: correct"), accepted=True),
            Attempt(wrong, 12, "stop", 2, 0, Verdict(False, "step 0 wrong", first_wrong_step=0),
                    parse_critic("Verdict: correct"), reject_reason="verifier: wrong"),
        ]
        writer.add(p.id, pipeline.outcome_rows(Outcome(p, attempts, "budget", samples=2, verified=1), cfg, models))
    writer.close()
    return cfg.round_dir


def _cfg(rounds, out, **kw) -> DistillConfig:
    return DistillConfig(**({"base_model": "unused", "rounds": [str(r) for r in rounds], "out_dir": str(out)} | kw))


def test_verified_arm_learns_only_verified_traces_and_the_control_learns_all(tmp_path):
    r1 = write_round(tmp_path, 1, problems=6)
    verified = gather(_cfg([r1], tmp_path / "m", critic_ratio=2.0))
    assert len(verified["solver"]) == 6
    assert not any("1+1+0=3" in e.completion for e in verified["solver"])
    control = gather(_cfg([r1], tmp_path / "m", solver_rows="all", critic="none"))
    assert len(control["solver"]) == 12 and control["critic"] == []
    # Critic targets are the verifier's labels, not what the critic said.
    targets = sorted(e.completion for e in verified["critic"])
    assert targets == sorted(["Verdict: correct"] * 6 + ["Verdict: wrong at step 1"] * 6)
    assert all(e.messages[0]["content"].startswith(CRITIC_PREFIX) for e in verified["critic"])


def test_replay_and_critic_share_are_capped(tmp_path):
    old = write_round(tmp_path, 1, problems=8)
    new = write_round(tmp_path, 2, problems=4)
    data = gather(_cfg([old, new], tmp_path / "m", replay=0.5, critic_ratio=0.25))
    assert len(data["solver"]) == 4 + 2          # the newest round + half as much replay
    assert len(data["critic"]) == 1              # 0.25 per solver example
    assert len(gather(_cfg([old, new], tmp_path / "m", replay=0))["solver"]) == 4


def test_rounds_on_an_object_store_are_read_like_local_ones(bucket, tmp_path):
    """distill reads rounds wherever load_rows does: here a bucket on a real moto S3 server."""
    fs, name = bucket
    remote = write_round(f"s3://{name}/runs/exp1", 1, problems=5)
    local = write_round(tmp_path, 1, problems=5)
    assert remote == f"s3://{name}/runs/exp1/round-1"
    from_s3, from_disk = gather(_cfg([remote], tmp_path / "m")), gather(_cfg([local], tmp_path / "m"))
    assert len(from_s3["solver"]) == 5 and from_s3 == from_disk
    with pytest.raises(FileNotFoundError, match=f"no round output \\(manifest.json\\) in: s3://{name}/runs/exp2/round-1"):
        gather(_cfg([f"s3://{name}/runs/exp2/round-1"], tmp_path / "m"))


def test_missing_round_and_bad_settings_are_refused(tmp_path):
    with pytest.raises(FileNotFoundError, match="no round output"):
        gather(_cfg([tmp_path / "nowhere"], tmp_path / "m"))
    with pytest.raises(ValueError, match="solver_rows must be one of"):
        _cfg([tmp_path], tmp_path / "m", solver_rows="verified")
    with pytest.raises(ValueError, match="critic=separate needs"):
        _cfg([tmp_path], tmp_path / "m", critic="separate")
    with pytest.raises(ValueError, match="lr must be > 0"):
        _cfg([tmp_path], tmp_path / "m", lr=0)


def test_distill_writes_a_loadable_model_that_learned(random_model_dir, tmp_path):
    from transformers import AutoModelForCausalLM

    r1 = write_round(tmp_path, 1, problems=16)
    out = tmp_path / "distilled"
    report = distill(_cfg([r1], out, base_model=str(random_model_dir), epochs=1, min_steps=30, max_steps=30,
                          batch_size=16, lr=3e-3, warmup_steps=3, threads=1, critic_ratio=1.0))
    saved = json.loads((out / "distill.json").read_text())
    assert saved["steps"] == 30 and saved["examples"] == 32 and saved["example_counts"] == {"solver": 16, "critic": 16}
    assert saved["tokens"] > 0 and saved["epochs"] == pytest.approx(30 * 16 / 32)
    first, last = report["loss_curve"][0][1], report["loss_curve"][-1][1]
    assert last < first * 0.7, report["loss_curve"]
    assert not (tmp_path / "distilled.partial").exists()
    model = AutoModelForCausalLM.from_pretrained(out)
    assert model.config.vocab_size > 0


def test_an_empty_round_carries_the_checkpoint_over(random_model_dir, tmp_path):
    out = tmp_path / "same"
    report = keep_checkpoint(_cfg([tmp_path], out, base_model=str(random_model_dir)))
    assert report["examples"] == 0 and report["role"] == "unchanged"
    assert (out / "model.safetensors").read_bytes() == (Path(random_model_dir) / "model.safetensors").read_bytes()


def test_an_empty_round_carries_a_cached_hub_model_over(random_model_dir, tmp_path, monkeypatch):
    cache = tmp_path / "hub"
    root = cache / "models--acme--tiny"
    shutil.copytree(random_model_dir, root / "snapshots" / ("0" * 40))
    (root / "refs").mkdir()
    (root / "refs" / "main").write_text("0" * 40)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    out = tmp_path / "same"
    report = keep_checkpoint(_cfg([tmp_path], out, base_model="acme/tiny"))
    assert report["role"] == "unchanged" and report["base_model"] == "acme/tiny"
    assert (out / "model.safetensors").read_bytes() == (Path(random_model_dir) / "model.safetensors").read_bytes()


def test_command_line_distils_and_prints_a_summary(random_model_dir, tmp_path):
    r1 = write_round(tmp_path, 1, problems=4)
    out = tmp_path / "cli"
    proc = subprocess.run(
        [sys.executable, "-m", "selfplay.distill", f"base_model={random_model_dir}", f"rounds=[{r1}]",
         f"out_dir={out}", "min_steps=2", "max_steps=2", "batch_size=4", "threads=1"],
        cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "| examples |" in proc.stdout and (out / "distill.json").exists()
    bad = subprocess.run([sys.executable, "-m", "selfplay.distill", f"base_model={random_model_dir}",
                          f"rounds=[{r1}]", f"out_dir={out}", "+stepz=3"], cwd=ROOT, capture_output=True, text=True,
                         timeout=600)
    assert bad.returncode != 0 and "stepz: unknown key" in bad.stderr
