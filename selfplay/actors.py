"""Ray actors around engines, and an async pool that batches many problems' requests onto them.

Every strategy coroutine awaits `pool.generate(request)` for one request; the pool gathers what is
queued into batches and sends each batch to a replica with free capacity, so engines see large
batches while each problem's code reads as plain sequential steps. Replicas are restarted by Ray
when they die, and the batch they held is sent again (max_task_retries): in-flight work is
re-queued, not lost. A request that cannot run (its result carries `error`) fails alone: its
awaiter gets `RequestFailed` with the reason, and the rest of its batch gets results.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any

import ray

from selfplay.engines.base import GenerationRequest, GenerationResult, RequestFailed
from selfplay.engines.config import EngineConfig

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelConfig:
    """One model role (solver or critic): the engine and how many replicas to run."""

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
    batch_size: int = 64
    """Most requests in one engine call (each request may ask for n completions)."""
    max_restarts: int = 3
    """How often Ray restarts a dead replica before the round gives up on it."""

    def __post_init__(self):
        if self.replicas < 1:
            raise ValueError(f"replicas must be >= 1, got {self.replicas}")
        if self.num_gpus < 0 or self.num_cpus < 0:
            raise ValueError("num_gpus and num_cpus must be >= 0")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")


@ray.remote
class EngineActor:
    """Holds one engine. Ray sets CUDA_VISIBLE_DEVICES from the actor's num_gpus: the one code path
    that owns GPU visibility; engines only ever see the devices they were given."""

    def __init__(self, cfg: EngineConfig):
        from selfplay.engines.load import load_engine

        self.engine = load_engine(cfg)
        # One tiny generation first: kernels, allocator pools and lazy inits warm up here, not
        # inside the first real batch (the round's clock starts once replicas are up).
        self.engine.generate([GenerationRequest("warm up", max_tokens=2)])

    def identity(self) -> dict[str, str]:
        return {"model_id": self.engine.model_id, "model_revision": self.engine.model_revision,
                "engine": type(self.engine).__name__}

    def generate(self, requests: list[GenerationRequest]) -> list[GenerationResult]:
        return self.engine.generate(requests)

    def pid(self) -> int:
        import os

        return os.getpid()


@dataclass
class _Replica:
    actor: Any
    busy: int = 0


@dataclass
class EnginePool:
    """Replicas of one model behind an async, batching `generate`."""

    cfg: ModelConfig
    name: str = "solver"
    replicas: list[_Replica] = field(default_factory=list)
    identity: dict[str, str] = field(default_factory=dict)

    def __post_init__(self):
        options = dict(num_cpus=self.cfg.num_cpus, num_gpus=self.cfg.num_gpus, resources=self.cfg.resources,
                       max_restarts=self.cfg.max_restarts, max_task_retries=self.cfg.max_restarts)
        self.replicas = [_Replica(EngineActor.options(**options).remote(self.cfg.engine)) for _ in range(self.cfg.replicas)]
        self.identity = ray.get(self.replicas[0].actor.identity.remote())
        self._queue: list[tuple[GenerationRequest, asyncio.Future]] = []
        self._wake: asyncio.Event | None = None
        self._runner: asyncio.Task | None = None
        self.generated_tokens = 0

    async def generate(self, request: GenerationRequest) -> GenerationResult:
        if self._runner is None:
            self._wake = asyncio.Event()
            self._runner = asyncio.ensure_future(self._dispatch())
        future = asyncio.get_running_loop().create_future()
        self._queue.append((request, future))
        self._wake.set()
        return await future

    async def _dispatch(self) -> None:
        # Up to two batches per replica: one computing and one queued behind it, so the engine
        # never idles while the driver turns results into the next requests. The queued one goes
        # only when it is full: a generation pass costs about the same for 3 sequences as for 64,
        # so requests that trickle in while a batch computes wait and go together.
        while True:
            await self._wake.wait()
            self._wake.clear()
            await asyncio.sleep(0)  # let every coroutine that is ready add its request first
            while self._queue:
                replica = min(self.replicas, key=lambda r: r.busy)
                if replica.busy >= 2 or (replica.busy and len(self._queue) < self.cfg.batch_size):
                    break
                batch, self._queue = self._queue[: self.cfg.batch_size], self._queue[self.cfg.batch_size :]
                replica.busy += 1
                asyncio.ensure_future(self._call(replica, batch))

    async def _call(self, replica: _Replica, batch: list[tuple[GenerationRequest, asyncio.Future]]) -> None:
        try:
            results = await replica.actor.generate.remote([r for r, _ in batch])
        except Exception as e:  # the replica died past its restarts, or the engine raised
            log.error("%s replica failed on a batch of %d: %s", self.name, len(batch), e)
            for _, future in batch:
                if not future.done():
                    future.set_exception(e)
        else:
            for (_, future), result in zip(batch, results):
                self.generated_tokens += sum(c.completion_tokens for c in result.completions)
                if future.done():
                    continue
                if result.error:
                    future.set_exception(RequestFailed(result.error))
                else:
                    future.set_result(result)
        finally:
            replica.busy -= 1
            self._wake.set()

    def close(self) -> None:
        if self._runner is not None:
            self._runner.cancel()
        for r in self.replicas:
            ray.kill(r.actor, no_restart=True)
