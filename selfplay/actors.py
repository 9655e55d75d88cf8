"""Ray actors around engines, and an async pool that streams many problems' requests onto them.

Every strategy coroutine awaits `pool.generate(request)` for one request; the pool sends each
request to a replica as soon as one has room (no driver-side batches) and the result comes back
as soon as that request finishes. Inside each replica the engine decides what runs together:
vLLM's scheduler (continuous batching), or the hf engine's micro-batches. Back-pressure: a replica
holds at most `max_outstanding_requests` requests and `max_outstanding_tokens` asked-for tokens;
the rest wait in the driver, which holds only the problems in flight.

Replicas are restarted by Ray when they die, and the requests they held are sent again
(max_task_retries): in-flight work is re-queued, not lost. A request that cannot run (its result
carries `error`, a timeout included) fails alone: its awaiter gets `RequestFailed` with the
reason. Cancelling an awaiter (or closing the pool) cancels its Ray task, which aborts the request
inside the engine.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import os
from dataclasses import dataclass, field
from typing import Any

import ray

from selfplay.engines.base import EngineDead, GenerationRequest, GenerationResult, RequestFailed
from selfplay.engines.config import EngineConfig

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelConfig:
    """One model role (solver or critic): the engine, how many replicas, and how much each holds."""

    engine: EngineConfig
    """The model and engine settings (the Hydra `engine` node)."""
    replicas: int = 1
    """Actors, each holding a full copy of the model (times tensor_parallel_size GPUs)."""
    num_gpus: float = 0.0
    """GPUs per replica; the actor's CUDA_VISIBLE_DEVICES comes from Ray's assignment."""
    num_cpus: float = 1.0
    """CPUs per replica (Ray scheduling)."""
    resources: dict[str, float] = field(default_factory=dict)
    """Custom Ray resources per replica, e.g. {"solver": 1} to pin replicas to the worker group
    that advertises that resource (k8s/ gives the solver and critic groups one each)."""
    max_outstanding_requests: int = 256
    """Most requests one replica holds at once (running or queued in its engine); more wait in
    the driver. Enough to keep the engine's batch (engine.batch_size sequences) full while
    finished requests come back, few enough that replicas stay balanced."""
    max_outstanding_tokens: int | None = None
    """Most tokens one replica holds at once, counted as n x max_tokens per request (what it
    may generate); None = no token limit. Bounds a replica's KV-cache demand when requests are long."""
    request_timeout_s: float | None = None
    """Seconds one request may take inside a replica before it is aborted in the engine and fails
    with that reason; None = no limit."""
    max_restarts: int = 3
    """How often Ray restarts a dead replica before the round gives up on it."""

    def __post_init__(self):
        if self.replicas < 1:
            raise ValueError(f"replicas must be >= 1, got {self.replicas}")
        if self.num_gpus < 0 or self.num_cpus < 0:
            raise ValueError("num_gpus and num_cpus must be >= 0")
        if self.max_outstanding_requests < 1:
            raise ValueError(f"max_outstanding_requests must be >= 1, got {self.max_outstanding_requests}")
        if self.max_outstanding_tokens is not None and self.max_outstanding_tokens < 1:
            raise ValueError(f"max_outstanding_tokens must be >= 1 or None, got {self.max_outstanding_tokens}")
        if self.request_timeout_s is not None and self.request_timeout_s <= 0:
            raise ValueError(f"request_timeout_s must be > 0 or None, got {self.request_timeout_s}")


@ray.remote
class EngineActor:
    """Holds one engine; an async actor, so every request it holds is awaited at once and the
    engine batches them. Ray sets CUDA_VISIBLE_DEVICES from the actor's num_gpus: the one code
    path that owns GPU visibility; engines only ever see the devices they were given."""

    def __init__(self, cfg: EngineConfig, request_timeout_s: float | None = None):
        import transformers

        from selfplay.engines.load import load_engine

        # A progress bar is a garbled line per load in the driver's log, which Ray prefixes.
        transformers.utils.logging.disable_progress_bar()
        self.engine = load_engine(cfg)
        self.timeout = request_timeout_s
        # One tiny generation first: kernels, allocator pools and lazy inits warm up here, not
        # inside the first real batch (the round's clock starts once replicas are up).
        self.engine.generate([GenerationRequest("warm up", max_tokens=2)])

    def identity(self) -> dict[str, str]:
        return {"model_id": self.engine.model_id, "model_revision": self.engine.model_revision,
                "engine": type(self.engine).__name__}

    async def generate(self, request: GenerationRequest) -> GenerationResult:
        """One request's result as soon as it finishes. A timeout aborts it in the engine and
        fails it with the reason; a cancelled call (ray.cancel) aborts it too."""
        try:
            future = self.engine.submit(request)
        except RuntimeError as e:
            return GenerationResult(0, error=f"engine refused the request: {e}")
        try:
            # Cancelling the wrapper (timeout, ray.cancel) cancels the engine's future: an abort.
            return await asyncio.wait_for(asyncio.wrap_future(future), self.timeout)
        except asyncio.TimeoutError:
            return GenerationResult(0, error=f"timed out after {self.timeout} s in the engine; aborted there")
        except EngineDead as e:
            # The engine cannot serve again (vLLM's engine core is gone): exit, so Ray restarts
            # this replica and retries what it held (max_task_retries).
            log.error("%s; exiting so Ray restarts this replica", e)
            os._exit(1)

    def running(self) -> int:
        """Requests inside the engine now (for tests and progress)."""
        return self.engine.running

    def close(self) -> None:
        """Stop the engine and what it started (vLLM's engine-core process) before the actor goes."""
        self.engine.close()

    def pid(self) -> int:
        return os.getpid()


@dataclass
class _Replica:
    actor: Any
    requests: int = 0
    """Requests sent and not yet answered."""
    tokens: int = 0
    """Their n x max_tokens."""


def _cost(request: GenerationRequest) -> int:
    return request.n * request.max_tokens


@dataclass
class EnginePool:
    """Replicas of one model behind an async, streaming `generate`."""

    cfg: ModelConfig
    name: str = "solver"
    replicas: list[_Replica] = field(default_factory=list)
    identity: dict[str, str] = field(default_factory=dict)

    def __post_init__(self):
        options = dict(num_cpus=self.cfg.num_cpus, num_gpus=self.cfg.num_gpus, resources=self.cfg.resources,
                       max_restarts=self.cfg.max_restarts, max_task_retries=self.cfg.max_restarts,
                       max_concurrency=max(1000, 2 * self.cfg.max_outstanding_requests))
        self.replicas = [_Replica(EngineActor.options(**options).remote(self.cfg.engine, self.cfg.request_timeout_s))
                         for _ in range(self.cfg.replicas)]
        self.identity = ray.get(self.replicas[0].actor.identity.remote())
        self._queue: collections.deque[tuple[GenerationRequest, asyncio.Future]] = collections.deque()
        self._outstanding: set[ray.ObjectRef] = set()
        self.generated_tokens = 0

    async def generate(self, request: GenerationRequest) -> GenerationResult:
        """The result of one request; RequestFailed when it cannot run (its reason), the actor's
        error when a replica is gone for good. Cancelling the awaiter aborts the request."""
        future = asyncio.get_running_loop().create_future()
        self._queue.append((request, future))
        self._dispatch()
        return await future

    def _has_room(self, replica: _Replica, request: GenerationRequest) -> bool:
        if replica.requests == 0:  # an idle replica takes any request, however long
            return True
        limit = self.cfg.max_outstanding_tokens
        return (replica.requests < self.cfg.max_outstanding_requests
                and (limit is None or replica.tokens + _cost(request) <= limit))

    def _dispatch(self) -> None:
        """Send queued requests, oldest first, to the least loaded replica while it has room."""
        while self._queue:
            request, future = self._queue[0]
            if future.done():  # its awaiter was cancelled before it left the driver
                self._queue.popleft()
                continue
            replica = min(self.replicas, key=lambda r: (r.tokens, r.requests))
            if not self._has_room(replica, request):
                return
            self._queue.popleft()
            replica.requests += 1
            replica.tokens += _cost(request)
            asyncio.ensure_future(self._call(replica, request, future))

    async def _call(self, replica: _Replica, request: GenerationRequest, future: asyncio.Future) -> None:
        ref = replica.actor.generate.remote(request)
        self._outstanding.add(ref)
        # An awaiter that gives up (cancelled: its problem or the round was cancelled) aborts the
        # request in the engine rather than leaving it running.
        future.add_done_callback(lambda f: ray.cancel(ref) if f.cancelled() else None)
        try:
            result = await ref
        except asyncio.CancelledError:
            ray.cancel(ref)
            if not future.done():
                future.cancel()
            raise
        except Exception as e:  # the replica died past its restarts, or the call was cancelled
            if not future.done():
                log.error("%s replica failed on a request: %s", self.name, e)
                future.set_exception(e)
        else:
            self.generated_tokens += sum(c.completion_tokens for c in result.completions)
            if not future.done():
                if result.error:
                    future.set_exception(RequestFailed(result.error))
                else:
                    future.set_result(result)
        finally:
            self._outstanding.discard(ref)
            replica.requests -= 1
            replica.tokens -= _cost(request)
            self._dispatch()

    def close(self) -> None:
        """Abort every request still outstanding, then stop the replicas."""
        for ref in list(self._outstanding):
            ray.cancel(ref)
        self._queue.clear()
        closing = [r.actor.close.remote() for r in self.replicas]
        ray.wait(closing, num_returns=len(closing), timeout=60)  # a replica that hangs is killed anyway
        for r in self.replicas:
            ray.kill(r.actor, no_restart=True)


class PooledEngine:
    """An EnginePool behind the in-process engines' batch call, for code written against an engine
    (held-out evaluation): `generate(requests)` sends every request at once, the replicas' engines
    batch them, and the results come back in the requests' order. A request that cannot run comes
    back as a result carrying its error, as an engine returns it."""

    def __init__(self, pool: EnginePool):
        self.pool = pool
        self.model_id = pool.identity["model_id"]
        self.model_revision = pool.identity["model_revision"]

    def generate(self, requests: list[GenerationRequest]) -> list[GenerationResult]:
        async def one(request: GenerationRequest) -> GenerationResult:
            try:
                return await self.pool.generate(request)
            except RequestFailed as e:
                return GenerationResult(0, error=str(e))

        async def every() -> list[GenerationResult]:
            return list(await asyncio.gather(*(one(r) for r in requests)))

        return asyncio.run(every())

    def close(self) -> None:
        self.pool.close()
