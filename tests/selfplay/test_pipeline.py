"""The round end to end on a real local Ray with real engines: output layout, bad rows, a
replica killed mid-run. (Kill-and-resume of the whole driver lives in test_resume.py.)"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import threading
import time

import datasets
import pytest

from selfplay.actors import ModelConfig
from selfplay.engines.config import EngineConfig
from selfplay.pipeline import ClusterConfig, OutputConfig, RoundConfig, VerifierConfig, run_round
from selfplay.problems import SourceConfig, TaskSpec
from selfplay.shards import load_rows, read_manifest, shard_paths
from selfplay.strategies import SamplingConfig, StrategyConfig


def _config(model_dir, out_dir, source, **kw) -> RoundConfig:
    return RoundConfig(
        solver=ModelConfig(EngineConfig(model=str(model_dir), engine="hf"), num_cpus=0.5),
        source=source,
        strategy=StrategyConfig(k=2, wave=2, max_samples=4, revisions=1, unsolvable_after=4,
                                sampling=SamplingConfig(max_tokens=kw.pop("max_tokens", 16), critic_max_tokens=8)),
        verifier=VerifierConfig(workers=1), output=OutputConfig(out_dir=str(out_dir)),
        cluster=ClusterConfig(max_in_flight=8), progress_every_s=0, **kw)


def test_round_writes_every_output_and_records_bad_rows(ray_cluster, random_model_dir, tmp_path):
    rows = [{"question": "1+1=?", "answer": "2"}, {"answer": "no question"}, "not an object",
            {"question": "2+2=?", "answer": "4"}]
    path = tmp_path / "p.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n{broken\n")
    cfg = _config(random_model_dir, tmp_path / "out", SourceConfig(kind="file", path=str(path), task="math"))
    stats = run_round(cfg)

    rd = cfg.round_dir
    assert stats["problems"] == 2 and stats["samples"] == 8
    errors = [json.loads(line) for line in open(f"{rd}/errors.jsonl")]
    assert len(errors) == 3 and {"question" in e["reason"] or "object" in e["reason"] or "JSON" in e["reason"] for e in errors} == {True}
    manifest = read_manifest(rd)
    assert manifest["meta"]["config_hash"] == cfg.hash()
    assert manifest["meta"]["models"]["solver"]["model_revision"]
    assert "math" in manifest["meta"]["verifiers"]
    for shard in manifest["shards"]:
        assert os.path.exists(f"{rd}/{shard['path']}") and shard["rows"] > 0 and len(shard["sha256"]) == 64
    rejected = load_rows(rd, "rejected").to_pylist()
    repeats = sum(p["duplicates"] for p in load_rows(rd, "problems").to_pylist())
    assert len(rejected) + repeats == 16  # 2 problems x 4 samples, each revised once; a repeated text is one row
    assert len({r["id"] for r in rejected}) == len(rejected)
    assert len({r["sampling"]["seed"] for r in rejected}) == len(rejected)  # each row names its own sample
    assert all(r["reject_reason"].startswith("verifier:") for r in rejected)
    assert {r["revision"] for r in rejected} == {0, 1}
    assert all(r["messages"][-1]["role"] == "assistant" for r in rejected)
    critic = load_rows(rd, "critic").to_pylist()
    assert len(critic) == len(rejected) and all(r["label_correct"] is False for r in critic)
    on_disk = json.load(open(f"{rd}/stats.json"))
    assert on_disk["problems"] == 2 and "critic" in on_disk
    loaded = datasets.load_dataset("parquet", data_files=shard_paths(rd, "rejected"), split="train")
    assert loaded.num_rows == len(rejected) and "messages" in loaded.column_names


def test_a_solver_replica_killed_mid_round_is_restarted_and_its_work_requeued(ray_cluster, random_model_dir, tmp_path):
    source = SourceConfig(kind="tasks", tasks=[TaskSpec("addition", 8, 3)])
    cfg = _config(random_model_dir, tmp_path / "out", source, max_tokens=32)
    killed = []

    def kill_engine_once():
        deadline = time.time() + 60
        while time.time() < deadline and not killed:
            pids = _engine_actor_pids()
            if pids:
                # Its batches are queued to it from the moment it exists, so a kill soon after it
                # appears lands mid-round on any machine (1.5 s was near the whole round on a fast one).
                time.sleep(0.3)
                os.kill(pids[0], signal.SIGKILL)
                killed.append(pids[0])
            time.sleep(0.2)

    killer = threading.Thread(target=kill_engine_once, daemon=True)
    killer.start()
    stats = run_round(cfg)
    killer.join(timeout=5)
    assert killed, "the test never found the engine actor to kill"
    assert stats["problems"] == 8 and stats["samples"] == 8 * 4
    assert not os.path.exists(os.path.join(cfg.round_dir, "errors.jsonl"))


def _engine_actor_pids() -> list[int]:
    """Ray titles actor processes "ray::EngineActor..." once the actor is up."""
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    if f.read().startswith(b"ray::EngineActor"):
                        pids.append(int(entry))
            except OSError:
                pass
    return pids


def test_a_source_that_raises_mid_round_loses_no_finished_problem(ray_cluster, random_model_dir, tmp_path, monkeypatch):
    """A failing source (a test double around the real round): the problems finished before it
    raised are committed, so a rerun resumes after them."""
    import pytest

    from selfplay import pipeline
    from selfplay.problems import iter_problems

    def failing_source(source):  # yields the real problems, then fails the way a broken reader would
        for n, item in enumerate(iter_problems(source)):
            if n == 3:
                raise OSError("the source's storage went away")
            yield item

    monkeypatch.setattr(pipeline, "iter_problems", failing_source)
    source = SourceConfig(kind="tasks", tasks=[TaskSpec(family="addition", n=6, difficulty=1)])
    cfg = _config(random_model_dir, tmp_path / "out", source, max_tokens=8)
    cfg = dataclasses.replace(cfg, cluster=ClusterConfig(max_in_flight=1))  # problem n+1 starts when n is done
    with pytest.raises(OSError, match="went away"):
        run_round(cfg)
    assert load_rows(cfg.round_dir, "problems").num_rows == 2  # the third was still running


PRESETS = [("gsm8k", "source=gsm8k"), ("math", "source=math"), ("math500", "source=math"), ("mbpp", "source=code"),
           ("apps", "source=code"), ("humaneval", "source=code"),
           ("generic", "source=file source.task=math source.columns.question=prompt source.columns.answer=gold")]


@pytest.mark.parametrize("shape, preset", PRESETS, ids=[s for s, _ in PRESETS])
def test_a_round_runs_on_each_dataset_shape_and_bad_rows_cost_only_themselves(shape, preset, ray_cluster, solver_model_dir, tmp_path):
    """The file in its dataset's own shape, bad rows included (tests/fixtures/datasets.py), through
    the preset's command-line config and a real round: every good problem is sampled, and each bad
    row, the duplicate and the problem whose prompt the model cannot take are recorded with their
    reason for themselves alone."""
    from selfplay.cli import compose
    from selfplay.generate import round_config
    from tests.fixtures import datasets as fixtures

    n = 12  # good rows; the bad ones come on top
    path = fixtures.write(shape, tmp_path, n=n, bad=True)
    cfg = round_config(compose("generate", [*preset.split(), f"source.path={path}", f"solver.engine.model={solver_model_dir}",
                                            "solver.engine.engine=hf", "solver.num_cpus=0.5", "critic=none", "strategy=sample",
                                            "strategy.k=1", "strategy.wave=1", "strategy.max_samples=1", "strategy.sampling.max_tokens=24",
                                            "verifier.workers=1", f"output.out_dir={tmp_path / 'out'}", "progress_every_s=0"]))
    stats = run_round(cfg)
    rd = cfg.round_dir
    assert stats["problems"] == n + 1 and stats["samples"] == n and stats["status"]["error"] == 1
    errors = [json.loads(line) for line in open(f"{rd}/errors.jsonl")]
    reasons = sorted(e["reason"] for e in errors)
    long_prompt = [e for e in errors if e["reason"].startswith("solver request failed: prompt has ")]
    assert len(long_prompt) == 1 and long_prompt[0]["reason"].endswith("tokens; the model takes 512 (prompt + completion)")
    assert long_prompt[0]["problem_id"] in {p["problem_id"] for p in load_rows(rd, "problems").to_pylist() if p["status"] == "error"}
    assert sum(r.startswith("duplicate problem") for r in reasons) == 1
    assert sum(r.startswith("row is 10,48") for r in reasons) == 1
    assert sum(r.startswith("not UTF-8 text") for r in reasons) == (0 if shape == "apps" else 1)  # Parquet holds UTF-8 only
    assert len(errors) == (4 if shape == "apps" else 5)  # + the preset's own bad gold or tests
    traces = load_rows(rd, "sft").to_pylist() + load_rows(rd, "rejected").to_pylist()
    assert len(traces) == n and {t["task"] for t in traces} == {"code" if preset == "source=code" else "math"}
    if shape in ("gsm8k", "math", "math500", "generic"):
        assert all(t["gold"] and "####" not in t["gold"] and "boxed" not in t["gold"] for t in traces)
