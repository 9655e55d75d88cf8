"""`load_engine`: the one way callers get an Engine from an `EngineConfig`.

    engine = load_engine(EngineConfig(model="models/reference", engine="auto"))
    results = engine.generate([GenerationRequest(prompt=[{"role": "user", "content": "2+2"}])])

`engine="auto"` picks vLLM where it can run the model and transformers otherwise, and logs which
and why. The engines themselves import only the contract (base.py), the config and the model
resolution, never this module, so importing one engine never imports the other.
"""

from __future__ import annotations

import logging

from selfplay.engines.base import Engine
from selfplay.engines.config import EngineConfig
from selfplay.engines.resolve import ResolvedModel, model_config, resolve_model

log = logging.getLogger(__name__)


def load_engine(config: EngineConfig) -> Engine:
    """Resolve the model, pick the engine and start it; call `close()` when done."""
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
