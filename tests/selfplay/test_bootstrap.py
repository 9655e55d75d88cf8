"""`python -m selfplay.bootstrap`: a tiny end-to-end run writes a loadable model directory and
bootstrap.json, a rerun is a cache hit, and the config file maps onto BootstrapConfig."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

import selfplay.bootstrap as bootstrap
from selfplay.bootstrap import BootstrapConfig, report_table, run, training_examples, training_key

ROOT = Path(__file__).resolve().parents[2]
TINY_MODEL = {"hidden_size": 32, "num_layers": 2, "num_heads": 2, "intermediate_size": 64, "max_positions": 256}


def _tiny(out_dir, **changes) -> BootstrapConfig:
    raw = {
        "out_dir": str(out_dir), "steps": 3, "batch_size": 8, "threads": 1, "examples_per_difficulty": 12,
        "solve": {"addition": [1, 2], "multiplication": [1]}, "model": TINY_MODEL,
        "eval": {"problems": 3, "easy": {"addition": [2]}, "hard": {"addition": [4]}, "judge_examples": 6,
                 "batch_size": 16, "max_tokens": 40},
    }
    raw.update(changes)
    return BootstrapConfig.from_dict(raw)


def test_tiny_run_writes_a_loadable_model_and_report_and_reruns_from_cache(tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    config = _tiny(tmp_path / "ref")
    first = run(config)
    assert first["cache_hit"] is False
    report = json.loads((tmp_path / "ref" / "bootstrap.json").read_text())
    for key in ("parameters", "training", "solve", "critic", "contrast", "config", "training_key", "seconds"):
        assert key in report, key
    assert report["training"]["tokens"] > 0 and report["training"]["loss_curve"]
    assert set(report["solve"]) == {"easy", "hard"}
    assert 0 <= report["solve"]["easy"]["addition"]["2"]["pass@1"] <= 1
    assert report["critic"]["examples"] == 6
    assert set(report["contrast"]["solve"]["easy"]["addition"]["2"]) == {"problems", "exact"}
    assert (tmp_path / "ref-answer-only" / "model.safetensors").exists()
    # The contrast sees as many solve examples as the reference model: 3 steps of which 1/1.5 solve.
    contrast = json.loads((tmp_path / "ref-answer-only" / "bootstrap.json").read_text())
    assert contrast["training"]["steps"] == 2 and report["training"]["steps"] == 3

    model = AutoModelForCausalLM.from_pretrained(tmp_path / "ref")
    tokenizer = AutoTokenizer.from_pretrained(tmp_path / "ref")
    assert model.num_parameters() == report["parameters"]
    assert tokenizer.apply_chat_template([{"role": "user", "content": "1+1=?"}], tokenize=False,
                                         add_generation_prompt=True) == "<|user|>1+1=?<|end|><|assistant|>"
    assert "| easy | addition | 2 |" in report_table(report)

    stamp = (tmp_path / "ref" / "model.safetensors").stat().st_mtime_ns
    again = run(config)
    assert again["cache_hit"] is True
    assert (tmp_path / "ref" / "model.safetensors").stat().st_mtime_ns == stamp

    # Evaluation settings alone changed: the weights are reused, only the evaluation reruns.
    reevaluated = run(_tiny(tmp_path / "ref", eval={**OmegaConf.to_container(OmegaConf.structured(config.eval)), "problems": 2}))
    assert reevaluated["cache_hit"] is False
    assert (tmp_path / "ref" / "model.safetensors").stat().st_mtime_ns == stamp
    assert reevaluated["solve"]["easy"]["addition"]["2"]["problems"] == 2


def test_with_two_threads_the_contrast_trains_in_its_own_process_beside_the_reference(tmp_path, capfd):
    first = run(_tiny(tmp_path / "ref", threads=2, steps=6))
    assert first["cache_hit"] is False and first["training"]["steps"] == 6
    # Only the contrast's own process logs with this tag (to the inherited stderr).
    assert "[contrast] training the answer-only contrast" in capfd.readouterr().err
    contrast = json.loads((tmp_path / "ref-answer-only" / "bootstrap.json").read_text())
    assert contrast["answer_only"] is True and contrast["training"]["steps"] == 4
    assert first["contrast"]["training"]["tokens"] == contrast["training"]["tokens"] > 0
    assert run(_tiny(tmp_path / "ref", threads=2, steps=6))["cache_hit"] is True


def test_same_seed_same_training_data():
    config = _tiny("unused")
    first, second = training_examples(config), training_examples(config)
    assert first == second
    solve = [e for e in first if not e.messages[0]["content"].startswith("Check: ")]
    judge = [e for e in first if e.messages[0]["content"].startswith("Check: ")]
    assert len(solve) == 36 and len(judge) == 18  # solve:judge 2:1
    assert any("wrong at step" in e.completion for e in judge) and any(e.completion == "Verdict: correct" for e in judge)
    assert all(e.completion.startswith("Answer: ") for e in training_examples(config, answer_only=True))


def test_the_cache_key_follows_the_training_examples_not_the_source_around_them(monkeypatch):
    config = _tiny("unused")
    key = training_key(config, False)
    assert training_key(_tiny("elsewhere", threads=2), False) == key  # where and how fast: same weights
    assert training_key(_tiny("unused", seed=1), False) != key
    examples = training_examples(config)
    changed = examples[:-1] + [bootstrap.Example(examples[-1].messages, examples[-1].completion + " ")]
    monkeypatch.setattr(bootstrap, "training_examples", lambda *_: changed)
    monkeypatch.setattr(bootstrap, "_TRAINING_KEYS", {})
    assert training_key(config, False) != key  # one character of one example retrains


def test_config_file_loads_into_the_dataclass():
    raw = OmegaConf.to_container(OmegaConf.load(ROOT / "conf" / "bootstrap.yaml"), resolve=True)
    raw = {k: v for k, v in raw.items() if k not in ("defaults", "hydra")}
    config = BootstrapConfig.from_dict(raw)
    assert config.out_dir == "models/reference" and config.model.hidden_size == 128
    assert (ROOT / "conf" / "bootstrap.yaml").read_text().startswith("# Train the reference model")


@pytest.mark.parametrize("change, message", [
    ({"solve": {"sudoku": [1]}}, "unknown task family 'sudoku'"),
    ({"solve": {"addition": [99]}}, "difficulty 99 out of range"),
    ({"steps": 0}, "steps"),
    ({"judge_ratio": -1}, "judge_ratio"),
])
def test_bad_settings_fail_at_start(change, message):
    with pytest.raises(ValueError, match=message):
        _tiny("unused", **change)


def test_command_line_takes_overrides_and_writes_nothing_else(tmp_path):
    out = tmp_path / "cli"
    overrides = [f"out_dir={out}", "steps=2", "batch_size=4", "threads=1", "examples_per_difficulty=4",
                 "solve={addition:[1]}", "model.hidden_size=32", "model.num_layers=1", "model.num_heads=2",
                 "model.intermediate_size=32", "eval.problems=2", "eval.easy={addition:[1]}", "eval.hard={addition:[3]}",
                 "eval.judge_examples=2", "eval.max_tokens=24", "contrast.enabled=false"]
    env = os.environ | {"PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-m", "selfplay.bootstrap", *overrides], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "| easy | addition | 1 |" in done.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cli"]  # no outputs/ or .hydra litter
    bad = subprocess.run([sys.executable, "-m", "selfplay.bootstrap", f"out_dir={out}", "stepz=3"], cwd=tmp_path,
                         env=env, capture_output=True, text=True, timeout=120)
    assert bad.returncode != 0 and "stepz" in bad.stderr


@pytest.mark.slow
def test_default_bootstrap_learns_the_easy_band_and_not_the_hard_one(tmp_path):
    raw = OmegaConf.to_container(OmegaConf.load(ROOT / "conf" / "bootstrap.yaml"), resolve=True)
    raw = {k: v for k, v in raw.items() if k not in ("defaults", "hydra")} | {"out_dir": str(tmp_path / "ref")}
    report = run(BootstrapConfig.from_dict(raw))
    easy, hard = report["solve"]["easy"]["addition"], report["solve"]["hard"]["addition"]
    assert min(easy[d]["pass@1"] for d in ("2", "3")) >= 0.9, report_table(report)
    assert max(cell["pass@1"] for cell in hard.values()) <= 0.5, report_table(report)
    contrast = report["contrast"]["solve"]["easy"]["addition"]
    assert max(contrast[d]["exact"] for d in ("2", "3")) < min(easy[d]["exact"] for d in ("2", "3"))
    assert report["critic"]["accuracy"] > 0.6
