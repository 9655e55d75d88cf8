"""The transformers engine: a continuous-batching decode loop over a transformers causal LM, CPU or CUDA.

Requests are submitted one by one (`submit`); every requested sample is one row. The engine's own
thread keeps up to `batch_size` rows decoding together: once a quarter of the slots are free it
prefills the rows waiting for them (as one left-padded batch, whose KV cache then joins the
running batch's), and rows that finished leave in groups too; every step decodes one token for
every row. So a short row never waits for the longest one, a queued row never waits for a whole
batch to end, and the cache is copied once per group rather than once per row. A request's result
is set as soon as its last row finishes.

Sampling is done per row, with a torch.Generator per row seeded `completion_seed(seed,
sample_index)` (base.py), so a seeded request gives the same completions whatever else shares
the batch, and sample k alone (n=1, its own seed) gives it again. Each row ends at its own EOS,
stop string or max_tokens; a row whose request was cancelled ends at its next token.

A request that cannot run fails alone: a prompt the model cannot take is refused at submit, and
when a prefill raises, its rows are prefilled again one by one, so only a row that fails on its
own carries the error.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import random
import threading
from concurrent.futures import Future, InvalidStateError
from dataclasses import dataclass, field
from typing import Sequence

import torch
import torch.nn.functional as F

from selfplay.engines.base import (
    ENGINE_ERROR, Completion, GenerationRequest, GenerationResult, Prepared, TokenTexts, check_requests,
    completion_seed, generate_all, prepare_requests,
)
from selfplay.engines.config import EngineConfig, resolve_device, resolve_dtype
from selfplay.engines.hf_cache import growing_layer, left_pad
from selfplay.engines.resolve import ResolvedModel, load_tokenizer, model_config

log = logging.getLogger(__name__)


@dataclass
class Pending:
    """A submitted request: its rows report here, and its future is set when the last one ends."""

    request: GenerationRequest
    prepared: Prepared
    future: Future
    rows_left: int
    completions: list[Completion | None] = field(default_factory=list)
    error: str = ""

    def row_done(self, sample: int, completion: Completion | None, error: str = "") -> None:
        self.completions[sample] = completion
        self.error = self.error or error
        self.rows_left -= 1
        if self.rows_left == 0:
            tokens = len(self.prepared.prompt_ids)
            result = (GenerationResult(tokens, error=self.error) if self.error
                      else GenerationResult(tokens, completions=list(self.completions)))
            with contextlib.suppress(InvalidStateError):  # its caller may have cancelled it
                self.future.set_result(result)


@dataclass
class Row:
    """One sample of one request, from the queue through the running batch."""

    pending: Pending
    sample: int
    seed: int
    generator: torch.Generator
    tokens: list[int] = field(default_factory=list)
    logprobs: list[dict[str, float]] = field(default_factory=list)
    done: bool = False
    """Finished (its result is out); its slot in the batch is freed at the next compaction."""

    @property
    def request(self) -> GenerationRequest:
        return self.pending.request

    @property
    def prompt(self) -> list[int]:
        return self.pending.prepared.prompt_ids


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
        self.eos_ids = set(_eos_ids(self.model.generation_config, self.tokenizer))
        self.pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else min(self.eos_ids)
        self._unseeded = random.Random(config.seed)
        self.token_texts = TokenTexts(self.tokenizer)
        self._waiting: collections.deque[Row] = collections.deque()
        self._work = threading.Condition()
        self._batch = Batch(self)
        self._closed = False
        threading.Thread(target=self._serve, name="hf-engine", daemon=True).start()
        log.info("hf engine: %s (%s) on %s, %s", self.model_id, self.model_revision, self.device, dtype)

    def submit(self, request: GenerationRequest) -> Future:
        """Queue one request; a future of its GenerationResult, set when its last row ends.
        Cancelling the future ends its rows at their next token (or before they start)."""
        (request,) = check_requests([request])
        future: Future = Future()
        (prepared,) = prepare_requests(self.tokenizer, [request], self.max_model_len)
        if isinstance(prepared, str):
            future.set_result(GenerationResult(0, error=prepared))
            return future
        with self._work:
            if self._closed:
                raise RuntimeError(f"the hf engine for {self.model_id} is closed")
            # Unseeded requests draw their seed here, in submission order, so the engine seed
            # replays the same stream whatever the batching.
            base = request.seed if request.seed is not None else self._unseeded.randrange(2**62)
            pending = Pending(request, prepared, future, request.n, [None] * request.n)
            for k in range(request.n):
                seed = completion_seed(base, k)
                self._waiting.append(Row(pending, k, seed, torch.Generator().manual_seed(seed % (1 << 64))))
            self._work.notify()
        return future

    def generate(self, requests: Sequence[GenerationRequest]) -> list[GenerationResult]:
        """Every request at once; their results in order (see base.generate_all)."""
        return generate_all(self, requests)

    @property
    def running(self) -> int:
        """Requests with rows waiting or decoding now."""
        with self._work:
            return len({id(r.pending) for r in list(self._waiting) + self._batch.rows if not r.done})

    def _serve(self) -> None:
        """The engine's thread: admit waiting rows into free slots, decode one token, repeat."""
        while True:
            with self._work:
                while not self._waiting and not self._batch.rows and not self._closed:
                    self._work.wait()
                if self._closed:
                    for row in list(self._waiting) + self._batch.rows:
                        row.pending.future.cancel()
                    return
                # Rows join in groups and finished rows leave in groups: each join or leave copies
                # the whole KV cache, and a prefill is a forward pass of its own, so doing either
                # for every row that comes or goes cost more than the decoding (short critic calls
                # finish every few steps). A group is a quarter of the batch; finished rows decode
                # on, discarded, until then (or until they are as many as the live ones).
                live = self._batch.live
                group = max(1, self.config.batch_size // 4)
                admitted = []
                if self._waiting and (live == 0 or self.config.batch_size - live >= group):
                    while self._waiting and live + len(admitted) < self.config.batch_size:
                        row = self._waiting.popleft()
                        if not row.pending.future.cancelled():
                            admitted.append(row)
            try:
                finished = len(self._batch.rows) - live
                if admitted or finished >= min(group, live):  # in a draining batch: once half are done
                    self._batch.compact()
                if admitted:
                    self._admit(admitted)
                if self._batch.rows:
                    self._batch.step()
            except Exception as e:  # noqa: BLE001 (a decode step that raises: the engine is broken)
                log.exception("the hf decode loop failed; failing its %d rows", self._batch.live)
                for row in (r for r in self._batch.rows if not r.done):
                    row.pending.row_done(row.sample, None, f"{ENGINE_ERROR}{type(e).__name__}: {e}")
                self._batch = Batch(self)

    def _admit(self, rows: list[Row]) -> None:
        """Prefill rows into the batch; if that raises, prefill them one by one so a row that
        breaks the engine fails alone."""
        try:
            self._prefill(rows)
        except Exception as e:  # noqa: BLE001 (recorded on the row)
            if len(rows) == 1:
                rows[0].pending.row_done(rows[0].sample, None, f"{ENGINE_ERROR}{type(e).__name__}: {e}")
                return
            log.warning("a prefill of %d rows failed (%s); prefilling them one by one", len(rows), e)
            for row in rows:
                self._admit([row])

    @torch.inference_mode()
    def _prefill(self, rows: list[Row]) -> None:
        width = max(len(r.prompt) for r in rows)
        ids = torch.full((len(rows), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, r in enumerate(rows):  # left padding: every prompt ends where generation starts
            ids[i, width - len(r.prompt):] = torch.tensor(r.prompt)
            mask[i, width - len(r.prompt):] = 1
        self._batch.join(rows, ids.to(self.device), mask.to(self.device))

    def _decode(self, ids: list[int]) -> str:
        # Special tokens stay: the trace markers <think> and </think> are special tokens.
        return self.tokenizer.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False)

    def close(self) -> None:
        with self._work:
            self._closed = True  # the engine's thread cancels what is left and ends
            self._work.notify()
        if self.device == "cuda":
            torch.cuda.empty_cache()


class Batch:
    """The running rows and their KV cache: rows join (prefilled) and leave (finished) between steps.

    The cache's sequence axis is shared: every row's tokens end at its right edge, shorter rows
    are padded on the left and masked, and each row has its own position ids, as in left-padded
    batch generation. Columns no row uses any more are cut off when rows leave."""

    def __init__(self, engine: HFEngine):
        self.engine = engine
        self.rows: list[Row] = []
        self.cache = None
        """The model's KV cache (a transformers DynamicCache) for `rows`, in that order."""
        self.mask: torch.Tensor | None = None
        """Attention mask over the cache's columns, one row per running row."""
        self.positions: torch.Tensor | None = None
        """Each row's next position id (its prompt plus generated tokens so far)."""

    def join(self, rows: list[Row], ids: torch.Tensor, mask: torch.Tensor) -> None:
        from transformers import DynamicCache

        cache = DynamicCache()
        cache.layer_class_to_replicate = growing_layer()  # its layers are made lazily, one per model layer
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        out = self.engine.model(input_ids=ids, attention_mask=mask, position_ids=positions, past_key_values=cache,
                                use_cache=True, logits_to_keep=1)
        logits = out.logits[:, -1, :]
        if self.cache is None:
            self.rows, self.cache, self.mask = list(rows), cache, mask
            self.positions = mask.sum(-1)
        else:
            width = max(self.mask.shape[1], mask.shape[1])
            for old, new in zip(self.cache.layers, cache.layers):
                old.hold(torch.cat([left_pad(old.keys, width, 2), left_pad(new.keys, width, 2)]),
                         torch.cat([left_pad(old.values, width, 2), left_pad(new.values, width, 2)]))
            self.mask = torch.cat([left_pad(self.mask, width, 1), left_pad(mask, width, 1)])
            self.positions = torch.cat([self.positions, mask.sum(-1)])
            self.rows += rows
        self._advance(rows, logits, first=len(self.rows) - len(rows))

    @property
    def live(self) -> int:
        """Rows still decoding (the others finished and wait for the next compaction)."""
        return sum(not r.done for r in self.rows)

    def compact(self) -> None:
        """Let finished rows leave (one copy of the cache for all of them)."""
        keep = [i for i, r in enumerate(self.rows) if not r.done]
        if len(keep) < len(self.rows):
            self._keep(keep)

    @torch.inference_mode()
    def step(self) -> None:
        """One token for every running row."""
        last = torch.tensor([r.tokens[-1] for r in self.rows], device=self.mask.device).unsqueeze(1)
        self.mask = torch.cat([self.mask, self.mask.new_ones((len(self.rows), 1))], dim=1)
        out = self.engine.model(input_ids=last, attention_mask=self.mask, position_ids=self.positions.unsqueeze(1),
                                past_key_values=self.cache, use_cache=True, logits_to_keep=1)
        self.positions = self.positions + 1
        self._advance(self.rows, out.logits[:, -1, :], first=0)

    def _advance(self, rows: list[Row], logits: torch.Tensor, first: int) -> None:
        """Pick the next token of `rows` (batch rows first.. onwards); a row that ends is done."""
        logits = logits.float()
        picked = pick(logits, rows)
        _record_logprobs(logits, picked, rows, self.engine.token_texts)
        engine = self.engine
        for row, token in zip(rows, picked.tolist()):
            if row.done:  # decoded on in a finished row's slot until the next compaction: discarded
                continue
            row.tokens.append(token)
            finish = _finish(row, token, engine)
            if finish is not None:
                row.done = True
                row.pending.row_done(row.sample, _completion(row, finish, engine) if finish != "abort" else None)

    def _keep(self, keep: list[int]) -> None:
        if not keep:
            self.rows, self.cache, self.mask, self.positions = [], None, None, None
            return
        index = torch.tensor(keep, device=self.mask.device)
        self.rows = [self.rows[i] for i in keep]
        self.mask, self.positions = self.mask[index], self.positions[index]
        used = int(self.mask.any(dim=0).nonzero()[0])  # columns left of this are padding in every row
        self.mask = self.mask[:, used:]
        for layer in self.cache.layers:
            layer.hold(layer.keys[index, :, used:], layer.values[index, :, used:])


def pick(logits: torch.Tensor, rows: list[Row]) -> torch.Tensor:
    """Each row's next token with that row's temperature, top_p and generator (greedy at 0)."""
    device = logits.device
    temperature = torch.tensor([max(r.request.temperature, 1e-6) for r in rows], device=device).unsqueeze(1)
    top_p = torch.tensor([r.request.top_p for r in rows], device=device).unsqueeze(1)
    greedy = torch.tensor([r.request.temperature == 0 for r in rows], device=device)
    probs = torch.softmax(logits / temperature, dim=-1)
    if bool((top_p < 1).any()):
        probs, order = probs.sort(dim=-1, descending=True)
        # Keep the smallest prefix whose mass reaches top_p (the top token always stays).
        probs = probs.masked_fill(probs.cumsum(dim=-1) - probs >= top_p, 0.0)
    else:
        order = None  # inverse-CDF sampling needs no particular order: skip the vocab sort
    cdf = probs.cumsum(dim=-1)
    # One uniform draw per row from its own CPU generator: independent of batch and device.
    u = torch.stack([torch.rand((), generator=r.generator) for r in rows]).to(device).unsqueeze(1)
    rank = torch.searchsorted(cdf, u * cdf[:, -1:]).clamp(max=cdf.shape[-1] - 1)
    picked = (rank if order is None else order.gather(1, rank)).squeeze(1)
    return torch.where(greedy, logits.argmax(dim=-1), picked)


def _record_logprobs(logits: torch.Tensor, picked: torch.Tensor, rows: list[Row], texts: TokenTexts) -> None:
    """Completion.logprobs for the rows that ask: the raw log-softmax (temperature 1, before
    top_p) of the chosen token and of the top k."""
    asking = [i for i, r in enumerate(rows) if r.request.logprobs and not r.done]
    if not asking:
        return
    index = torch.tensor(asking, device=logits.device)
    logprobs = F.log_softmax(logits[index], dim=-1)
    chosen = picked[index]
    chosen_lp = logprobs.gather(1, chosen.unsqueeze(1)).squeeze(1).tolist()
    top = logprobs.topk(max(rows[i].request.logprobs for i in asking), dim=-1)
    top_ids, top_lp = top.indices.tolist(), top.values.tolist()
    for j, i in enumerate(asking):
        k = rows[i].request.logprobs
        rows[i].logprobs.append(texts.logprobs([(int(chosen[j]), chosen_lp[j])] + list(zip(top_ids[j][:k], top_lp[j][:k]))))


def _finish(row: Row, token: int, engine: HFEngine) -> str | None:
    """Why the row ends after `token` ("stop", "length", "abort"), or None if it goes on."""
    r = row.request
    if token in engine.eos_ids and not r.ignore_eos:
        return "stop"
    if r.stop and _find_stop(engine._decode(row.tokens), r.stop) >= 0:
        return "stop"
    if len(row.tokens) >= row.pending.prepared.max_tokens:
        return "length"
    if row.pending.future.cancelled():
        return "abort"
    return None


def _completion(row: Row, finish: str, engine: HFEngine) -> Completion:
    tokens = row.tokens
    text_tokens = tokens[:-1] if finish == "stop" and tokens[-1] in engine.eos_ids and not row.request.ignore_eos else tokens
    return Completion(text=_truncate_at_stop(engine._decode(text_tokens), row.request.stop),
                      completion_tokens=len(tokens), finish_reason=finish, seed=row.seed,
                      logprobs=tuple(row.logprobs) if row.request.logprobs else None)


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
