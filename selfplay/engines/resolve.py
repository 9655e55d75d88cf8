"""Where a model's files are on this machine, and the revision every row records about it.

`model` is a local directory or a hub id. Hub ids are looked up in the local Hugging Face cache
first; the hub is contacted only when the model is not cached.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".gguf")


class ModelNotFoundError(RuntimeError):
    """The model is neither a local directory nor reachable on the hub."""


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
    """The model's config.json (architecture, context length, head sizes)."""
    return json.loads((path / "config.json").read_text())


def load_tokenizer(path: Path):
    """The model's own tokenizer (its chat template included)."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(path)
