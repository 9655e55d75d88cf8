"""The per-problem strategy (selfplay/strategies.py) on a real transformers engine and the real
verifiers, without Ray: the handles call the engine directly."""

from __future__ import annotations

import asyncio

import pytest

import verifiers
from selfplay import prompts
from selfplay.engines import EngineConfig, GenerationRequest, load_engine
from selfplay.strategies import AcceptConfig, Handles, SamplingConfig, StrategyConfig, solve
from selfplay.tasks import make_problems


@pytest.fixture(scope="module")
def hf_engine(random_model_dir):
    engine = load_engine(EngineConfig(model=str(random_model_dir), engine="hf", device="cpu", dtype="float32"))
    yield engine
    engine.close()


def handles(engine) -> Handles:
    async def generate(request: GenerationRequest):
        return engine.generate([request])[0]

    async def verify(problem, text):
        return verifiers.verify(problem.to_dict(), text)

    return Handles(solve=generate, judge=None, verify=verify)


def test_each_sample_of_a_wave_records_its_own_seed_and_that_seed_regenerates_it(hf_engine):
    problem = make_problems("addition", 1, seed=0, difficulty=3)[0]
    sampling = SamplingConfig(temperature=1.0, max_tokens=24)
    cfg = StrategyConfig(k=3, wave=3, max_samples=3, revisions=0, unsolvable_after=3, sampling=sampling)
    outcome = asyncio.run(solve(problem, handles(hf_engine), cfg, AcceptConfig(), round_=0))

    wave = outcome.attempts
    assert len(wave) == 3 and len({a.seed for a in wave}) == 3
    for a in wave:
        (alone,) = hf_engine.generate([GenerationRequest(
            prompts.solver_messages(problem.question), n=1, temperature=sampling.temperature,
            top_p=sampling.top_p, max_tokens=sampling.max_tokens, seed=a.seed)])
        assert alone.completions[0].text == a.text


def test_the_critic_scores_each_trace_with_its_probability_of_correct(solver_model_dir):
    """The real hf engine's log-probabilities through the critic request: a greedy critic's call
    is its likelier verdict word, so the score is a probability on the call's side of 1/2."""
    engine = load_engine(EngineConfig(model=str(solver_model_dir), engine="hf", device="cpu", dtype="float32"))
    try:
        h = handles(engine)
        h.judge = h.solve
        cfg = StrategyConfig(k=4, wave=4, max_samples=4, revisions=0, unsolvable_after=4,
                             sampling=SamplingConfig(temperature=1.0, max_tokens=24, critic_max_tokens=24))
        calls = [a.critic for p in make_problems("addition", 4, seed=0, difficulty=1)
                 for a in asyncio.run(solve(p, h, cfg, AcceptConfig(), round_=0)).attempts]
    finally:
        engine.close()
    scored = [c for c in calls if c.correct is not None]
    assert len(scored) >= len(calls) // 2  # the trained critic writes its verdict line
    assert all(0.0 < c.score < 1.0 and (c.score >= 0.5) == c.correct for c in scored)
