"""engine=auto: which engine `load_engine` picks for a model, and why (selfplay/engines/load.py)."""

from __future__ import annotations

import importlib.util
import json
import logging
import shutil

import pytest

from selfplay.engines.config import EngineConfig
from selfplay.engines.hf import HFEngine
from selfplay.engines.load import choose_engine, load_engine
from selfplay.engines.resolve import resolve_model
from selfplay.refmodel import ModelShape, save_random_model

needs_vllm = pytest.mark.skipif(importlib.util.find_spec("vllm") is None, reason="vllm is not installed")


@needs_vllm
def test_auto_picks_vllm_for_a_model_it_supports(model_dir):
    kind, why = choose_engine(EngineConfig(model=str(model_dir)), resolve_model(str(model_dir)))
    assert kind == "vllm", why


@needs_vllm
def test_auto_picks_transformers_when_vllm_cannot_run_the_model(model_dir, tmp_path):
    odd_heads = save_random_model(tmp_path / "heads", ModelShape(hidden_size=64, num_heads=4, num_layers=1))
    kind, why = choose_engine(EngineConfig(model=str(odd_heads)), resolve_model(str(odd_heads)))
    assert (kind, "head sizes" in why) == ("hf", True)

    unknown = shutil.copytree(model_dir, tmp_path / "arch")
    config = json.loads((unknown / "config.json").read_text())
    config["architectures"] = ["NoSuchModelForCausalLM"]
    (unknown / "config.json").write_text(json.dumps(config))
    kind, why = choose_engine(EngineConfig(model=str(unknown)), resolve_model(str(unknown)))
    assert kind == "hf" and "NoSuchModelForCausalLM" in why


@needs_vllm
def test_auto_respects_a_device_the_installed_vllm_cannot_use(model_dir):
    from vllm.platforms import current_platform

    other = "cpu" if current_platform.is_cuda_alike() else "cuda"
    kind, why = choose_engine(EngineConfig(model=str(model_dir), device=other), resolve_model(str(model_dir)))
    assert kind == "hf" and repr(other) in why


def test_load_engine_auto_logs_its_choice_and_the_reason(tmp_path, caplog):
    # Head dim 16 is outside vLLM's CPU attention sizes, so auto must fall back to transformers
    # (it would too without vLLM installed); the log says which engine and why.
    model = save_random_model(tmp_path / "m", ModelShape(hidden_size=64, num_heads=4, num_layers=1))
    with caplog.at_level(logging.INFO, logger="selfplay.engines.load"):
        engine = load_engine(EngineConfig(model=str(model), engine="auto", device="cpu"))
    try:
        assert isinstance(engine, HFEngine)
        assert any("engine=auto chose hf" in r.getMessage() for r in caplog.records)
    finally:
        engine.close()
