"""The generation contract every engine implements: batches of requests in, batches of results out.

Callers build `GenerationRequest`s (chat messages or plain text), call `engine.generate(requests)`,
and get one `GenerationResult` per request, in order, each with `n` completions. Engines apply the
model tokenizer's chat template to chat prompts themselves.

A request that cannot run (a prompt longer than the model takes, an empty prompt, an error the
engine raises for it alone) fails alone: its result carries `error` and no completions, and every
other request of the batch completes. Only a batch where nothing can run raises.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, Sequence

Messages = list[dict[str, str]]


@dataclass(frozen=True)
class GenerationRequest:
    prompt: Messages | str
    """Chat messages ([{"role": "user", "content": ...}]) or plain text (no template applied)."""
    n: int = 1
    """Completions to sample for this prompt."""
    temperature: float = 0.0
    """0 means greedy decoding."""
    top_p: float = 1.0
    max_tokens: int = 256
    """Most new tokens per completion."""
    stop: tuple[str, ...] = ()
    """Strings that end a completion; the stop string itself is not part of the text."""
    seed: int | None = None
    """Per-request seed: the same request with the same seed gives the same completions."""

    def __post_init__(self):
        if self.n < 1:
            raise ValueError(f"n must be >= 1, got {self.n}")
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.max_tokens < 1:
            raise ValueError(f"max_tokens must be >= 1, got {self.max_tokens}")
        if isinstance(self.stop, (list, str)):
            object.__setattr__(self, "stop", (self.stop,) if isinstance(self.stop, str) else tuple(self.stop))


@dataclass(frozen=True)
class Completion:
    text: str
    completion_tokens: int
    finish_reason: str
    """"stop" (EOS or a stop string) or "length" (max_tokens reached)."""


@dataclass(frozen=True)
class GenerationResult:
    prompt_tokens: int
    completions: list[Completion] = field(default_factory=list)
    error: str = ""
    """Why this request could not run ("" when it ran); then `completions` is empty."""


class RequestFailed(RuntimeError):
    """One request could not run, for a reason of its own (raised by callers that get a result
    with `error`, such as the engine pools); retrying the same request fails the same way."""


class Engine(Protocol):
    model_id: str
    """Where the model came from: a local path or a hub id."""
    model_revision: str
    """A content hash of the weights/config (local dirs) or the hub commit: goes into every row."""

    def generate(self, requests: Sequence[GenerationRequest]) -> list[GenerationResult]: ...

    def close(self) -> None: ...
