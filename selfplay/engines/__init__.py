"""Generation engines behind one contract (base.py): vLLM (vllm.py) and transformers (hf.py).

Get one with `load_engine(EngineConfig(model=..., engine="auto"))`: the config is in config.py,
finding the model's files in resolve.py, picking and starting the engine in load.py.
"""

from selfplay.engines.base import Completion, Engine, GenerationRequest, GenerationResult, RequestFailed
from selfplay.engines.config import EngineConfig
from selfplay.engines.load import load_engine
from selfplay.engines.resolve import ModelNotFoundError, resolve_model

__all__ = [
    "Completion", "Engine", "EngineConfig", "GenerationRequest", "GenerationResult", "ModelNotFoundError",
    "RequestFailed", "load_engine", "resolve_model",
]
