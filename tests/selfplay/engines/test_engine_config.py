"""EngineConfig validation and what its "auto" dtype means (selfplay/engines/config.py)."""

from __future__ import annotations

import pytest

from selfplay.engines.config import EngineConfig, resolve_dtype


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
