"""Generation engines behind one contract (base.py): vLLM (vllm.py) and transformers (hf.py).

Get one with `load_engine(EngineConfig(model=..., engine="auto"))` (load.py).
"""

from selfplay.engines.base import Completion, Engine, GenerationRequest, GenerationResult
from selfplay.engines.load import EngineConfig, ModelNotFoundError, load_engine, resolve_model

__all__ = [
    "Completion", "Engine", "EngineConfig", "GenerationRequest", "GenerationResult", "ModelNotFoundError",
    "load_engine", "resolve_model",
]
