"""The transformers engine: `model.generate`, batched with left padding, CPU or CUDA.

Requests are submitted one by one (`submit`) and queue for the engine's own thread, which takes
what is queued, up to `batch_size` rows, and runs it as one micro-batch (while it runs, the next
one queues up). Every requested sample is one row; rows are sorted by prompt length (less
padding). Sampling is done per row by `RowSampler`, with a torch.Generator per row
seeded `completion_seed(seed, sample_index)` (base.py), so a seeded request gives the same
completions whatever else shares its batch, and sample k alone (n=1, its own seed) gives it again;
generate itself then runs greedy over the sampler's one-hot scores. `RowStops` ends each row at
its own EOS, stop string or max_tokens.

A request that cannot run fails alone: a prompt the model cannot take is refused before any batch,
and a batch that raises is run again row by row, so only the rows that fail on their own carry the
error.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import random
import threading
from concurrent.futures import Future, InvalidStateError
from dataclasses import dataclass
from typing import Sequence

import torch
from transformers import GenerationConfig, LogitsProcessor, LogitsProcessorList, StoppingCriteria, StoppingCriteriaList

from selfplay.engines.base import (
    ENGINE_ERROR, Completion, GenerationRequest, GenerationResult, Prepared, TokenTexts, check_requests,
    completion_seed, generate_all, prepare_requests,
)
from selfplay.engines.config import EngineConfig, resolve_device, resolve_dtype
from selfplay.engines.resolve import ResolvedModel, load_tokenizer, model_config

log = logging.getLogger(__name__)


@dataclass
class Pending:
    """A submitted request waiting for the engine's thread."""

    request: GenerationRequest
    prepared: Prepared
    seed: int
    """The request's seed, or the one drawn for it from the engine's stream."""
    future: Future


def _settle(future: Future, result=None, exception: BaseException | None = None) -> None:
    """Set a future unless its caller cancelled it meanwhile."""
    with contextlib.suppress(InvalidStateError):
        if exception is not None:
            future.set_exception(exception)
        else:
            future.set_result(result)


@dataclass
class Row:
    """One sample of one request, as it moves through a batch."""

    request: int
    sample: int
    prompt: list[int]
    seed: int
    temperature: float
    top_p: float
    max_tokens: int
    stop: tuple[str, ...]
    logprobs: int = 0
    """Top log-probabilities to record per token (the request's `logprobs`)."""
    ignore_eos: bool = False
    """Generate past EOS (the request's `ignore_eos`)."""
    future: Future | None = None
    """The request's future: once cancelled, the row ends at its next token ("abort")."""
    length: int | None = None
    """Tokens generated when the row finished (EOS and stop-string tokens included)."""
    finish: str = "length"
    completion: Completion | None = None
    error: str = ""


class HFEngine:
    """Engine protocol over transformers; see the module docstring."""

    def __init__(self, config: EngineConfig, resolved: ResolvedModel):
        from transformers import AutoModelForCausalLM

        self.config = config
        self.model_id = resolved.model_id
        self.model_revision = resolved.revision
        self.device = resolve_device(config.device)
        if self.device == "cuda" and not torch.cuda.is_available():
            raise RuntimeError("device 'cuda' was asked for but torch sees no CUDA device")
        dtype = resolve_dtype(config.dtype, self.device)
        self.tokenizer = load_tokenizer(resolved.path)
        self.model = AutoModelForCausalLM.from_pretrained(resolved.path, dtype=getattr(torch, dtype))
        self.model.to(self.device).eval()
        hf_config = model_config(resolved.path)
        self.max_model_len = config.max_model_len or hf_config.get("max_position_embeddings") or 2048
        self.eos_ids = _eos_ids(self.model.generation_config, self.tokenizer)
        self.pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.eos_ids[0]
        self._unseeded = random.Random(config.seed)
        self.token_texts = TokenTexts(self.tokenizer)
        self._queue: collections.deque[Pending] = collections.deque()
        self._work = threading.Condition()
        self._decoding = 0
        threading.Thread(target=self._serve, name="hf-engine", daemon=True).start()
        log.info("hf engine: %s (%s) on %s, %s", self.model_id, self.model_revision, self.device, dtype)

    def submit(self, request: GenerationRequest) -> Future:
        """Queue one request; a future of its GenerationResult. The engine's thread runs what is
        queued in batches of up to `batch_size` rows; cancelling the future ends its rows at the
        next token (or drops it before it starts)."""
        (request,) = check_requests([request])
        future: Future = Future()
        (prepared,) = prepare_requests(self.tokenizer, [request], self.max_model_len)
        if isinstance(prepared, str):
            future.set_result(GenerationResult(0, error=prepared))
            return future
        with self._work:
            if self.model is None:
                raise RuntimeError(f"the hf engine for {self.model_id} is closed")
            # Unseeded requests draw their seed here, in submission order, so the engine seed
            # replays the same stream whatever the batching.
            base = request.seed if request.seed is not None else self._unseeded.randrange(2**62)
            self._queue.append(Pending(request, prepared, base, future))
            self._work.notify()
        return future

    @property
    def running(self) -> int:
        """Requests queued or being decoded now."""
        return len(self._queue) + self._decoding

    def generate(self, requests: Sequence[GenerationRequest]) -> list[GenerationResult]:
        """Every request at once; their results in order (see base.generate_all)."""
        return generate_all(self, requests)

    def _serve(self) -> None:
        """The engine's thread: take what is queued (up to a batch of rows), run it, repeat."""
        while True:
            with self._work:
                while not self._queue and self.model is not None:
                    self._work.wait()
                if self.model is None:
                    for pending in self._queue:
                        pending.future.cancel()
                    return
                taken, rows = [], 0
                while self._queue and (not taken or rows + self._queue[0].request.n <= self.config.batch_size):
                    pending = self._queue.popleft()
                    if not pending.future.cancelled():
                        taken.append(pending)
                        rows += pending.request.n
                self._decoding = len(taken)
            try:
                self._run_requests(taken)
            except BaseException as e:  # a bug here must not leave callers waiting forever
                for pending in taken:
                    _settle(pending.future, exception=e)
                raise
            finally:
                self._decoding = 0

    def _run_requests(self, taken: list[Pending]) -> None:
        rows = [Row(i, k, p.prepared.prompt_ids, completion_seed(p.seed, k), p.request.temperature, p.request.top_p,
                    p.prepared.max_tokens, p.request.stop, p.request.logprobs, p.request.ignore_eos, future=p.future)
                for i, p in enumerate(taken) for k in range(p.request.n)]
        ordered = sorted(rows, key=lambda row: len(row.prompt))
        for start in range(0, len(ordered), self.config.batch_size):
            self._run_isolated(ordered[start : start + self.config.batch_size])
        results = [GenerationResult(len(p.prepared.prompt_ids)) for p in taken]
        for row in rows:  # `rows` is in request order, samples ascending
            if row.error:
                results[row.request] = GenerationResult(results[row.request].prompt_tokens, error=row.error)
            elif not results[row.request].error:
                results[row.request].completions.append(row.completion)
        for pending, result in zip(taken, results):
            _settle(pending.future, result=result)

    def _run_isolated(self, rows: list[Row]) -> None:
        """Run a batch; if it raises, run its rows one by one so one bad row fails alone."""
        try:
            self._run_batch(rows)
        except Exception as e:  # noqa: BLE001 (recorded on the row; raised above if every row fails)
            if len(rows) == 1:
                rows[0].error = f"{ENGINE_ERROR}{type(e).__name__}: {e}"
                return
            log.warning("a batch of %d rows failed (%s); running its rows one by one", len(rows), e)
            for row in rows:
                self._run_isolated([row])

    @torch.inference_mode()
    def _run_batch(self, rows: list[Row]) -> None:
        width = max(len(r.prompt) for r in rows)
        input_ids = torch.full((len(rows), width), self.pad_id, dtype=torch.long)
        attention = torch.zeros((len(rows), width), dtype=torch.long)
        for i, r in enumerate(rows):  # left padding: every prompt ends where generation starts
            input_ids[i, width - len(r.prompt):] = torch.tensor(r.prompt)
            attention[i, width - len(r.prompt):] = 1
        stops = RowStops(rows, width, self.eos_ids, self.tokenizer)
        sampler = RowSampler(rows)
        # generate ends a row at EOS by itself; with a row that must go past EOS it gets an id no
        # token has, and RowStops ends every row at its own EOS instead.
        eos = [-1] if any(r.ignore_eos for r in rows) else self.eos_ids
        settings = GenerationConfig(
            do_sample=False, max_new_tokens=max(r.max_tokens for r in rows), eos_token_id=eos,
            pad_token_id=self.pad_id, num_beams=1,
        )
        out = self.model.generate(
            input_ids=input_ids.to(self.device), attention_mask=attention.to(self.device),
            generation_config=settings, logits_processor=LogitsProcessorList([sampler]),
            stopping_criteria=StoppingCriteriaList([stops]),
        )
        new = out[:, width:].tolist()
        for i, r in enumerate(rows):
            tokens = new[i][: r.length if r.length is not None else r.max_tokens]
            text_tokens = tokens[:-1] if r.finish == "stop" and tokens and tokens[-1] in self.eos_ids else tokens
            text = _truncate_at_stop(self._decode(text_tokens), r.stop)
            logprobs = sampler.logprobs(i, len(tokens), self.token_texts) if r.logprobs else None
            r.completion = Completion(text=text, completion_tokens=len(tokens), finish_reason=r.finish, seed=r.seed,
                                      logprobs=logprobs)

    def _decode(self, ids: list[int]) -> str:
        # Special tokens stay: the trace markers <think> and </think> are special tokens.
        return self.tokenizer.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False)

    def close(self) -> None:
        with self._work:
            self.model = None  # the engine's thread cancels what is still queued and ends
            self._work.notify()
        if self.device == "cuda":
            torch.cuda.empty_cache()


class RowSampler(LogitsProcessor):
    """Picks each row's next token with that row's temperature, top_p and generator, and returns
    scores where only the pick is finite, so generate's greedy step takes exactly that token.
    For rows that ask for log-probabilities it records, per step, the raw log-softmax of the
    chosen token and of the top k (Completion.logprobs)."""

    def __init__(self, rows: list[Row]):
        self.top_k = [r.logprobs for r in rows]
        self.asking = [i for i, k in enumerate(self.top_k) if k]
        self.position = {row: j for j, row in enumerate(self.asking)}
        self.steps: list[tuple[torch.Tensor, ...]] = []
        """Per generated token: (chosen ids, their log-probs, top-k ids, top-k log-probs) for the asking rows."""
        self.generators = [torch.Generator().manual_seed(r.seed % (1 << 64)) for r in rows]
        self.temperature = torch.tensor([max(r.temperature, 1e-6) for r in rows]).unsqueeze(1)
        self.top_p = torch.tensor([r.top_p for r in rows]).unsqueeze(1)
        self.greedy = torch.tensor([r.temperature == 0 for r in rows])

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        logits = scores.float()
        device = logits.device
        probs = torch.softmax(logits / self.temperature.to(device), dim=-1)
        if bool((self.top_p < 1).any()):
            probs, order = probs.sort(dim=-1, descending=True)
            # Keep the smallest prefix whose mass reaches top_p (the top token always stays).
            probs = probs.masked_fill(probs.cumsum(dim=-1) - probs >= self.top_p.to(device), 0.0)
        else:
            order = None  # inverse-CDF sampling needs no particular order: skip the vocab sort
        cdf = probs.cumsum(dim=-1)
        # One uniform draw per row from its own CPU generator: independent of batch and device.
        u = torch.stack([torch.rand((), generator=g) for g in self.generators]).to(device).unsqueeze(1)
        rank = torch.searchsorted(cdf, u * cdf[:, -1:]).clamp(max=cdf.shape[-1] - 1)
        picked = (rank if order is None else order.gather(1, rank)).squeeze(1)
        picked = torch.where(self.greedy.to(device), logits.argmax(dim=-1), picked)
        if self.asking:
            self._record(logits, picked)
        onehot = torch.full_like(scores, float("-inf"))
        return onehot.scatter(1, picked.unsqueeze(1), 0.0)


    def _record(self, logits: torch.Tensor, picked: torch.Tensor) -> None:
        rows = torch.tensor(self.asking, device=logits.device)
        logprobs = torch.log_softmax(logits[rows], dim=-1)  # raw: temperature 1, before top_p
        chosen = picked[rows]
        top = logprobs.topk(max(self.top_k), dim=-1)
        self.steps.append((chosen.cpu(), logprobs.gather(1, chosen.unsqueeze(1)).squeeze(1).cpu(),
                           top.indices.cpu(), top.values.cpu()))

    def logprobs(self, row: int, length: int, texts: TokenTexts) -> tuple[dict[str, float], ...]:
        """Completion.logprobs of batch row `row` for its first `length` tokens."""
        j, k = self.position[row], self.top_k[row]
        out = []
        for chosen, chosen_lp, top_ids, top_lp in self.steps[:length]:
            pairs = [(int(chosen[j]), float(chosen_lp[j]))] + list(zip(top_ids[j, :k].tolist(), top_lp[j, :k].tolist()))
            out.append(texts.logprobs(pairs))
        return tuple(out)


class RowStops(StoppingCriteria):
    """Ends each row at its EOS, its own stop strings or its own max_tokens, and records where and
    why it ended (generate only knows a batch-wide max_new_tokens and EOS)."""

    def __init__(self, rows: list[Row], prompt_width: int, eos_ids: list[int], tokenizer):
        self.rows, self.width, self.eos, self.tokenizer = rows, prompt_width, set(eos_ids), tokenizer

    def __call__(self, input_ids: torch.LongTensor, scores, **kwargs) -> torch.BoolTensor:
        generated = input_ids.shape[1] - self.width
        last = input_ids[:, -1].tolist()
        for i, r in enumerate(self.rows):
            if r.length is not None:
                continue
            if last[i] in self.eos and not r.ignore_eos:
                r.length, r.finish = generated, "stop"
            elif r.future is not None and r.future.cancelled():
                r.length, r.finish = generated, "abort"
            elif r.stop and _find_stop(self._text(input_ids[i]), r.stop) >= 0:
                r.length, r.finish = generated, "stop"
            elif generated >= r.max_tokens:
                r.length, r.finish = generated, "length"
        return torch.tensor([r.length is not None for r in self.rows], device=input_ids.device)

    def _text(self, ids: torch.Tensor) -> str:
        return self.tokenizer.decode(ids[self.width:].tolist(), skip_special_tokens=False,
                                     clean_up_tokenization_spaces=False)


def _find_stop(text: str, stops: tuple[str, ...]) -> int:
    """Index of the earliest stop string in text, or -1."""
    hits = [i for i in (text.find(s) for s in stops) if i >= 0]
    return min(hits) if hits else -1


def _truncate_at_stop(text: str, stops: tuple[str, ...]) -> str:
    cut = _find_stop(text, stops)
    return text if cut < 0 else text[:cut]


def _eos_ids(generation_config, tokenizer) -> list[int]:
    eos = generation_config.eos_token_id
    ids = list(eos) if isinstance(eos, (list, tuple)) else [eos] if eos is not None else []
    if tokenizer.eos_token_id is not None and tokenizer.eos_token_id not in ids:
        ids.append(tokenizer.eos_token_id)
    if not ids:
        raise ValueError("the model defines no EOS token (generation_config.eos_token_id or the tokenizer's)")
    return ids
