"""The generation contract every engine implements, and the request preparation both engines share.

Callers build `GenerationRequest`s (chat messages or plain text) and either stream them in one by
one, `engine.submit(request)` -> a future of its `GenerationResult`, set as soon as that request
finishes (the engine batches whatever is running; cancelling the future aborts the request in the
engine), or hand over many at once, `engine.generate(requests)` -> one result per request, in
order. Each result has `n` completions. Engines apply the model tokenizer's chat template to chat
prompts themselves (`prepare_requests`), so both engines see identical token ids, report the same
prompt_tokens and refuse the same requests.

A request that cannot run (a prompt longer than the model takes, an empty prompt, an error the
engine raises for it alone) fails alone: its result carries `error` and no completions, and every
other request completes. Only a `generate` call where every request that could start raised an
engine error raises (the engine itself is broken).

Sample k of a request with seed s is drawn with seed `completion_seed(s, k)` and reports it in
`Completion.seed`: the same request with n=1 and that seed gives that completion again.
"""

from __future__ import annotations

from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Protocol, Sequence

Messages = list[dict[str, str]]
ENGINE_ERROR = "engine error: "
"""How the error of a request the engine raised on begins (vs. a request refused before it ran)."""
MAX_LOGPROBS = 20
"""Most top log-probabilities a request may ask for per token (vLLM's own default limit)."""


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
    """Per-request seed: the same request with the same seed gives the same completions; sample k
    is drawn with `completion_seed(seed, k)`."""
    logprobs: int = 0
    """Top log-probabilities to return per generated token (0: none); see `Completion.logprobs`."""
    ignore_eos: bool = False
    """Generate past EOS, to max_tokens or a stop string: fixes completion lengths whatever the
    model writes (benchmarks use it to set a length mix)."""

    def __post_init__(self):
        if self.n < 1:
            raise ValueError(f"n must be >= 1, got {self.n}")
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.max_tokens < 1:
            raise ValueError(f"max_tokens must be >= 1, got {self.max_tokens}")
        if not 0 <= self.logprobs <= MAX_LOGPROBS:
            raise ValueError(f"logprobs must be in [0, {MAX_LOGPROBS}] (top alternatives per token), got {self.logprobs}")
        if isinstance(self.stop, (list, str)):
            object.__setattr__(self, "stop", (self.stop,) if isinstance(self.stop, str) else tuple(self.stop))


@dataclass(frozen=True)
class Completion:
    text: str
    completion_tokens: int
    finish_reason: str
    """"stop" (EOS or a stop string) or "length" (max_tokens reached)."""
    seed: int | None = None
    """The seed this completion was sampled with (`completion_seed` of the request's seed and the
    sample's index); None where the engine sampled it from an unseeded stream it cannot name."""
    logprobs: tuple[dict[str, float], ...] | None = None
    """With request.logprobs = k > 0: one dict per generated token (as many as completion_tokens,
    EOS and stop-string tokens included), mapping token text (each token decoded alone, as the
    engine decodes completions, special tokens kept) to its log-probability, for the chosen token
    and the k most likely ones. The log-probabilities are the model's raw distribution (log-softmax
    of the logits at temperature 1, before top_p), whatever the request's sampling settings, so
    both engines report the same numbers and a greedy request reports real probabilities. Two
    tokens that decode to the same text keep the higher value. None when not asked for."""


@dataclass(frozen=True)
class GenerationResult:
    prompt_tokens: int
    completions: list[Completion] = field(default_factory=list)
    error: str = ""
    """Why this request could not run ("" when it ran); then `completions` is empty."""


class RequestFailed(RuntimeError):
    """One request could not run, for a reason of its own (raised by callers that get a result
    with `error`, such as the engine pools); retrying the same request fails the same way."""


class EngineDead(RuntimeError):
    """The engine itself is gone (vLLM's engine core died): no request can run on it any more,
    so whoever holds it should start a new one (the Ray actor exits and is restarted)."""


class Engine(Protocol):
    model_id: str
    """Where the model came from: a local path or a hub id."""
    model_revision: str
    """A content hash of the weights/config (local dirs) or the hub commit: goes into every row."""

    def submit(self, request: GenerationRequest) -> Future:
        """Start one request; a future of its GenerationResult. Cancelling it aborts the request."""

    def generate(self, requests: Sequence[GenerationRequest]) -> list[GenerationResult]:
        """Every request at once; one result per request, in order (`generate_all`)."""

    def close(self) -> None: ...


def generate_all(engine: Engine, requests: Sequence[GenerationRequest]) -> list[GenerationResult]:
    """Submit every request, then wait for all: the engine schedules them together. Raises when
    every request that could start failed with an engine error (the engine is broken, not the
    requests)."""
    futures = [engine.submit(r) for r in check_requests(requests)]
    results = [f.result() for f in futures]
    started = [r for r in results if r.completions or r.error.startswith(ENGINE_ERROR)]
    if started and all(r.error for r in started):
        raise RuntimeError(f"the {type(engine).__name__} failed on every request: {started[0].error}")
    return results


class TokenTexts:
    """Token id -> its text as completions are decoded (special tokens kept), cached: the keys of
    `Completion.logprobs`, computed the same way by both engines."""

    def __init__(self, tokenizer):
        self.tokenizer, self.cache = tokenizer, {}

    def text(self, token_id: int) -> str:
        if token_id not in self.cache:
            self.cache[token_id] = self.tokenizer.decode([token_id], skip_special_tokens=False,
                                                         clean_up_tokenization_spaces=False)
        return self.cache[token_id]

    def logprobs(self, pairs) -> dict[str, float]:
        """{text: log-probability} from (token id, log-probability) pairs."""
        out: dict[str, float] = {}
        for token_id, logprob in pairs:
            text = self.text(token_id)
            out[text] = max(logprob, out.get(text, float("-inf")))
        return out


def completion_seed(request_seed: int, index: int) -> int:
    """The seed of sample `index` of a request seeded `request_seed`. It is vLLM's own rule for
    n > 1 (each child request gets seed + index), so the hf engine follows it and vLLM needs no
    help; a row records this seed, not the request's, so it names its own sample."""
    return request_seed + index


# ------------------------------------------------------------------ request preparation


def render_chat(tokenizer, messages: Messages) -> str:
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


def check_requests(requests) -> list[GenerationRequest]:
    """The batch as a list; a TypeError for an item that is not a request at all (a caller's bug,
    not a request that cannot run)."""
    requests = list(requests)
    for i, r in enumerate(requests):
        if not isinstance(r, GenerationRequest):
            raise TypeError(f"request {i} is a {type(r).__name__}, not a GenerationRequest")
    return requests


@dataclass(frozen=True)
class Prepared:
    """A request ready for an engine: its prompt ids and the completion length that fits."""

    prompt_ids: list[int]
    """The prompt as token ids (`prompt_token_ids`)."""
    max_tokens: int
    """The request's max_tokens capped so prompt + completion fit the model (the completion then
    ends with "length")."""


def prepare_requests(tokenizer, requests: Sequence[GenerationRequest], max_model_len: int) -> list[Prepared | str]:
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
