"""EngineConfig validation, model resolution (local dirs, hub cache, offline) and engine=auto."""

from __future__ import annotations

import importlib.util
import json
import logging
import shutil

import pytest

from selfplay.engines.hf import HFEngine
from selfplay.engines.load import (
    EngineConfig, ModelNotFoundError, choose_engine, load_engine, render_chat, resolve_dtype, resolve_model,
)
from selfplay.refmodel import ModelShape, save_random_model

needs_vllm = pytest.mark.skipif(importlib.util.find_spec("vllm") is None, reason="vllm is not installed")


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("engine", "tgi", "engine must be one of auto, vllm, hf"),
        ("dtype", "fp8", "dtype must be one of"),
        ("device", "tpu", "device must be one of auto, cpu, cuda"),
        ("distributed_executor_backend", "slurm", "distributed_executor_backend must be one of mp, ray, uni"),
        ("tensor_parallel_size", 0, "tensor_parallel_size must be >= 1"),
        ("gpu_memory_utilization", 1.5, r"gpu_memory_utilization must be in \(0, 1\]"),
        ("cpu_kv_cache_gib", 0, "cpu_kv_cache_gib must be > 0"),
        ("max_model_len", 1, "max_model_len must be >= 2"),
        ("batch_size", 0, "batch_size must be >= 1"),
        ("model", " ", "must be a local path or a hub id"),
    ],
)
def test_a_bad_config_value_is_refused_with_its_name(field, value, message):
    settings = {"model": "m", field: value}
    with pytest.raises(ValueError, match=message):
        EngineConfig(**settings)


def test_conflicting_settings_are_refused():
    with pytest.raises(ValueError, match="'uni' runs one worker"):
        EngineConfig(model="m", distributed_executor_backend="uni", tensor_parallel_size=2)
    with pytest.raises(ValueError, match="float16 on CPU"):
        EngineConfig(model="m", device="cpu", dtype="float16")


def test_dtype_auto_is_float32_on_cpu_and_explicit_dtypes_stay():
    assert resolve_dtype("auto", "cpu") == "float32"
    assert resolve_dtype("bfloat16", "cpu") == "bfloat16"


def test_a_local_directory_gets_a_stable_revision_that_follows_its_content(model_dir, tmp_path):
    first, again = resolve_model(str(model_dir)), resolve_model(str(model_dir))
    assert first.path == model_dir.resolve() and first.model_id == str(model_dir)
    assert first.revision == again.revision and len(first.revision) == 16

    copy = shutil.copytree(model_dir, tmp_path / "copy")
    assert resolve_model(str(copy)).revision == first.revision  # content, not location
    config = json.loads((copy / "config.json").read_text())
    config["rope_theta"] = 500000.0
    (copy / "config.json").write_text(json.dumps(config))
    assert resolve_model(str(copy)).revision != first.revision


def test_retrained_weights_of_another_size_change_the_revision(tmp_path):
    small = save_random_model(tmp_path / "a", ModelShape(hidden_size=64, num_heads=2, num_layers=1))
    revision = resolve_model(str(small)).revision
    weights = next(small.glob("*.safetensors"))
    weights.write_bytes(weights.read_bytes() + b"\0" * 8)
    assert resolve_model(str(small)).revision != revision


def test_a_missing_directory_or_one_without_config_is_a_clear_error(tmp_path):
    with pytest.raises(ModelNotFoundError, match="model directory ./no/such/model does not exist"):
        resolve_model("./no/such/model")
    with pytest.raises(ModelNotFoundError, match="has no config.json"):
        resolve_model(str(tmp_path))


def test_a_hub_id_offline_and_not_cached_gives_one_clear_message(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    expected = "model acme/no-such-model is not on this machine and the hub is unreachable; pass a local path"
    with pytest.raises(ModelNotFoundError) as caught:
        resolve_model("acme/no-such-model")
    assert str(caught.value) == expected


def test_a_hub_id_with_the_hub_unreachable_gives_the_same_message(monkeypatch, tmp_path):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # the discard port: nothing listens
    with pytest.raises(ModelNotFoundError, match="not on this machine and the hub is unreachable"):
        resolve_model("acme/no-such-model")


def hub_cache_with(model_dir, cache, repo="acme/tiny", commit="0123456789abcdef0123456789abcdef01234567"):
    """The layout huggingface_hub leaves after a download: refs/main names a snapshot folder."""
    root = cache / f"models--{repo.replace('/', '--')}"
    shutil.copytree(model_dir, root / "snapshots" / commit)
    (root / "refs").mkdir()
    (root / "refs" / "main").write_text(commit)
    return repo, commit


def test_a_cached_hub_model_loads_offline_with_its_commit_as_revision(model_dir, monkeypatch, tmp_path):
    repo, commit = hub_cache_with(model_dir, tmp_path)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    resolved = resolve_model(repo)
    assert resolved.revision == commit and resolved.path.name == commit
    engine = load_engine(EngineConfig(model=repo, engine="hf"))
    try:
        assert (engine.model_id, engine.model_revision) == (repo, commit)
    finally:
        engine.close()


def test_the_fallback_chat_format_is_role_lines_for_tokenizers_without_a_template():
    class TemplateFreeTokenizer:  # a test double: only the missing template matters here
        chat_template = None

    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "2+2?"}]
    assert render_chat(TemplateFreeTokenizer(), messages) == "system: Be brief.\nuser: 2+2?\nassistant:"


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


def test_two_checkpoints_of_one_shape_have_different_revisions(tmp_path):
    """Each round's checkpoint has the same config and file sizes: the rows must still tell them apart."""
    shape = ModelShape(hidden_size=64, num_heads=2, num_layers=1)
    first = resolve_model(str(save_random_model(tmp_path / "a", shape, seed=0))).revision
    second = resolve_model(str(save_random_model(tmp_path / "b", shape, seed=1))).revision
    assert first != second
