"""Model resolution: local dirs and their revisions, the hub cache, offline (selfplay/engines/resolve.py)."""

from __future__ import annotations

import json
import shutil

import pytest

from selfplay.engines import EngineConfig, load_engine
from selfplay.engines.resolve import ModelNotFoundError, resolve_model
from selfplay.refmodel import ModelShape, save_random_model


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


def test_two_checkpoints_of_one_shape_have_different_revisions(tmp_path):
    """Each round's checkpoint has the same config and file sizes: the rows must still tell them apart."""
    shape = ModelShape(hidden_size=64, num_heads=2, num_layers=1)
    first = resolve_model(str(save_random_model(tmp_path / "a", shape, seed=0))).revision
    second = resolve_model(str(save_random_model(tmp_path / "b", shape, seed=1))).revision
    assert first != second


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
