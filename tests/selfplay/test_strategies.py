"""The per-problem strategy (selfplay/strategies.py) on a real transformers engine and the real
verifiers, without Ray: the handles call the engine directly."""

from __future__ import annotations

import asyncio

import pytest

import verifiers
from selfplay import prompts
from selfplay.engines import EngineConfig, GenerationRequest, load_engine
from selfplay.strategies import AcceptConfig, Handles, SamplingConfig, StrategyConfig, solve
from selfplay.tasks import make_problems, reference_solution


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


def scripted_handles(texts: list[str], calls: dict[str, int], judge_share: float = 1.0) -> Handles:
    """Test double of the engines (the test is about the strategy's bookkeeping, not generation):
    the solver answers every request with `texts`, the critic calls every trace correct; `calls`
    counts the verifier's and the critic's work."""
    from selfplay.engines.base import Completion, GenerationResult

    async def generate(request: GenerationRequest):
        return GenerationResult(1, [Completion(t, 3, "stop") for t in texts[: request.n]])

    async def judge(request: GenerationRequest):
        calls["judge"] += 1
        return GenerationResult(1, [Completion(prompts.format_critic(True), 3, "stop")])

    async def verify(problem, text):
        calls["verify"] += 1
        return verifiers.verify(problem.to_dict(), text)

    return Handles(solve=generate, judge=judge, verify=verify, judge_share=judge_share)


def test_a_text_sampled_again_is_checked_once_and_every_copy_gets_its_verdict_and_critique():
    problem = make_problems("addition", 1, seed=0, difficulty=1)[0]
    right = reference_solution(problem).trace()
    texts = [right, "Answer: -1", right, right]
    calls = {"verify": 0, "judge": 0}
    cfg = StrategyConfig(k=4, wave=4, max_samples=8, revisions=0, unsolvable_after=8)
    outcome = asyncio.run(solve(problem, scripted_handles(texts, calls), cfg, AcceptConfig(), round_=0))

    # Two waves of the same four texts: two distinct texts, each verified and judged once.
    assert len(outcome.attempts) == 8 and calls == {"verify": 2, "judge": 2}
    assert [a.accepted for a in outcome.attempts] == [True, False, True, True] * 2
    assert outcome.verified == 6
    assert all(a.critic is not None and a.critic.correct for a in outcome.attempts)
    assert all(a.reject_reason.startswith("verifier") for a in outcome.attempts if not a.accepted)


def test_the_critic_judges_the_configured_share_of_traces_the_same_ones_every_time():
    from selfplay.strategies import judged

    picks = [judged("p1", f"trace {i}", 0.25) for i in range(4000)]
    assert 0.22 < sum(picks) / len(picks) < 0.28
    assert picks == [judged("p1", f"trace {i}", 0.25) for i in range(4000)]
    assert all(judged("p1", f"trace {i}", 1.0) for i in range(100))

    problems = make_problems("addition", 40, seed=0, difficulty=2)
    calls = {"verify": 0, "judge": 0}
    cfg = StrategyConfig(k=1, wave=1, max_samples=1, revisions=0, unsolvable_after=1)
    outcomes = [asyncio.run(solve(p, scripted_handles([f"{p.question} guess"], calls, 0.25), cfg, AcceptConfig(), 0))
                for p in problems]
    judged_traces = [a for o in outcomes for a in o.attempts if a.critic is not None]
    assert calls["verify"] == 40 and calls["judge"] == len(judged_traces)
    assert 0 < len(judged_traces) < 40
