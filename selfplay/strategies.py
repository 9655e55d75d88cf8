"""How traces are produced for one problem: adaptive rejection sampling with critique-and-revise.

`solve` is one coroutine per problem. It reads as the loop it is: sample a wave of traces, verify
each, let the critic judge each, send rejected traces back to the solver with the critique for a
revision, and stop once `k` traces are accepted, the budget is spent, or the problem looks
unsolvable. Batching across problems happens underneath, in the engine pools.

A request that cannot run (`RequestFailed`: a prompt longer than the model takes, say) costs only
its own problem: a solver prompt that cannot run ends the problem with status "error"; a critic or
revise prompt that cannot run leaves that trace unjudged or unrevised. Each is kept in
`Outcome.errors` with its reason, for errors.jsonl.
"""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import dataclass, field
from typing import Awaitable, Callable

from selfplay import prompts
from selfplay.engines.base import Completion, GenerationRequest, RequestFailed, completion_seed
from selfplay.records import Problem
from verifiers import Verdict


@dataclass(frozen=True)
class SamplingConfig:
    """Solver sampling settings (the critic decodes greedily)."""

    temperature: float = 1.0
    top_p: float = 1.0
    max_tokens: int = 256
    """Most tokens in one trace."""
    critic_max_tokens: int = 64
    """Most tokens in one critic verdict + critique."""


@dataclass(frozen=True)
class StrategyConfig:
    """Per-problem budget and revision policy (the Hydra `strategy` group)."""

    k: int = 4
    """Accepted traces wanted per problem; sampling stops once reached (at most k are kept)."""
    wave: int = 4
    """Traces sampled at once per problem."""
    max_samples: int = 16
    """First-attempt traces per problem at most (revisions not counted)."""
    revisions: int = 1
    """Times a rejected trace goes back to the solver with the critique (0 = plain rejection
    sampling)."""
    unsolvable_after: int = 8
    """Stop a problem with no verified trace after this many samples: it looks unsolvable now."""
    sampling: SamplingConfig = field(default_factory=SamplingConfig)

    def __post_init__(self):
        if min(self.k, self.wave, self.max_samples) < 1:
            raise ValueError("k, wave and max_samples must be >= 1")
        if self.revisions < 0:
            raise ValueError(f"revisions must be >= 0, got {self.revisions}")


@dataclass(frozen=True)
class AcceptConfig:
    require_critic: bool = False
    """Accept only traces the critic also calls correct (on top of the verifier)."""


@dataclass
class Attempt:
    """One trace and everything known about it."""

    text: str
    tokens: int
    finish_reason: str
    seed: int
    """The seed this trace was sampled with: a solver request with n=1 and this seed (and the
    same prompt and sampling settings) gives this text again."""
    revision: int
    """0 = first attempt; r = the r-th revision of a rejected trace."""
    verdict: Verdict | None = None
    critic: prompts.CriticVerdict | None = None
    critic_text: str = ""
    accepted: bool = False
    reject_reason: str = ""


@dataclass
class Outcome:
    problem: Problem
    attempts: list[Attempt]
    status: str
    """"solved" (k accepted), "budget" (max_samples spent), "unsolvable" (stopped early),
    "error" (the solver prompt cannot run; the reason is in `errors`)."""
    samples: int = 0
    """First-attempt traces sampled."""
    verified: int = 0
    """First-attempt traces the verifier accepted."""
    errors: list[str] = field(default_factory=list)
    """Requests of this problem that could not run, with the role and reason."""


@dataclass
class Handles:
    """What a strategy may call: the solver and critic pools and the verifier, and the prompts
    they are asked with."""

    solve: Callable[[GenerationRequest], Awaitable]
    judge: Callable[[GenerationRequest], Awaitable] | None
    verify: Callable[[Problem, str], Awaitable[Verdict]]
    prompt: prompts.PromptConfig = field(default_factory=prompts.PromptConfig)
    judge_share: float = 1.0
    """Share of traces the critic judges (`judged` picks them); 1 = every one."""


def judged(problem_id: str, text: str, share: float) -> bool:
    """Whether the critic judges this trace when it judges `share` of them: a hash of the problem and
    the text decides, so a rerun or resumed round judges the same traces, and a repeat of a text
    gets the same answer."""
    if share >= 1.0:
        return True
    digest = hashlib.sha256(f"{problem_id}\n{text}".encode()).digest()
    return int.from_bytes(digest[:8], "little") < share * 2**64


def sample_seed(problem_id: str, round_: int, index: int) -> int:
    """Deterministic per problem, round and sample: a rerun (or a resumed run) asks the engine for
    the same samples. A wave's request gets the seed of its first sample's index; its sample k is
    drawn with `completion_seed(seed, k)`."""
    digest = hashlib.sha256(f"{problem_id}|{round_}|{index}".encode()).digest()
    return int.from_bytes(digest[:4], "little")


async def solve(problem: Problem, h: Handles, cfg: StrategyConfig, accept: AcceptConfig, round_: int) -> Outcome:
    attempts: list[Attempt] = []
    errors: list[str] = []
    accepted = samples = verified = 0
    checked: dict[tuple[str, str], Attempt] = {}  # (text, finish reason) -> its first attempt
    while accepted < cfg.k and samples < cfg.max_samples:
        if verified == 0 and samples >= cfg.unsolvable_after:
            return Outcome(problem, attempts, "unsolvable", samples, verified, errors)
        n = min(cfg.wave, cfg.max_samples - samples)
        seed = sample_seed(problem.id, round_, samples)
        try:
            result = await h.solve(GenerationRequest(
                h.prompt.solver_messages(problem.question), n=n, temperature=cfg.sampling.temperature,
                top_p=cfg.sampling.top_p, max_tokens=cfg.sampling.max_tokens, seed=seed))
        except RequestFailed as e:  # the same prompt would fail every wave: the problem ends here
            return Outcome(problem, attempts, "error", samples, verified, errors + [f"solver request failed: {e}"])
        samples += n
        # Each sample records the seed it was drawn with, not the wave's: a row's seed alone
        # regenerates its text (a request with n=1 and that seed).
        wave = [Attempt(c.text, c.completion_tokens, c.finish_reason, completion_seed(seed, k), 0)
                for k, c in enumerate(result.completions)]
        # A model often samples the same text twice; verifying and judging it again (greedily) would
        # give the same verdict and critique, so a repeat takes the first one's.
        fresh: dict[tuple[str, str], Attempt] = {}
        for a in wave:
            if (a.text, a.finish_reason) not in checked:
                fresh.setdefault((a.text, a.finish_reason), a)
        await asyncio.gather(*(_check(problem, a, h, cfg, accept, errors) for a in fresh.values()))
        checked.update(fresh)
        for a in wave:
            if checked[a.text, a.finish_reason] is not a:
                _same_check(checked[a.text, a.finish_reason], a)
        verified += sum(a.verdict.correct for a in wave)
        await asyncio.gather(*(_revise(problem, a, h, cfg, accept, attempts, errors) for a in wave if not a.accepted))
        attempts.extend(wave)
        accepted = sum(a.accepted for a in attempts)
    return Outcome(problem, attempts, "solved" if accepted >= cfg.k else "budget", samples, verified, errors)


async def _check(problem: Problem, a: Attempt, h: Handles, cfg: StrategyConfig, accept: AcceptConfig,
                 errors: list[str]) -> None:
    """Verify, then let the critic judge; decide acceptance."""
    if a.finish_reason == "length":
        a.verdict = Verdict(False, "truncated: hit max_tokens before the answer")
    else:
        a.verdict = await h.verify(problem, a.text)
    critic_failed = ""
    if h.judge is not None and judged(problem.id, a.text, h.judge_share):
        try:
            result = await h.judge(GenerationRequest(h.prompt.critic_messages(problem.question, a.text), n=1,
                                                     temperature=0.0, max_tokens=cfg.sampling.critic_max_tokens,
                                                     logprobs=prompts.VERDICT_LOGPROBS))
        except RequestFailed as e:  # the trace stays unjudged
            critic_failed = f"critic request failed: {e}"
            errors.append(critic_failed)
        else:
            a.critic_text = result.completions[0].text
            a.critic = prompts.judge_completion(result.completions[0])  # the call and its score
    if not a.verdict.correct:
        a.reject_reason = f"verifier: {a.verdict.reason}"
    elif accept.require_critic and not (a.critic and a.critic.correct):
        a.reject_reason = critic_failed or "critic: does not call the trace correct"
    else:
        a.accepted = True


def _same_check(first: Attempt, repeat: Attempt) -> None:
    repeat.verdict, repeat.critic, repeat.critic_text = first.verdict, first.critic, first.critic_text
    repeat.accepted, repeat.reject_reason = first.accepted, first.reject_reason


async def _revise(problem: Problem, first: Attempt, h: Handles, cfg: StrategyConfig, accept: AcceptConfig,
                  attempts: list[Attempt], errors: list[str]) -> None:
    """Send a rejected trace back with the critique, up to `cfg.revisions` times."""
    previous = first
    for r in range(1, cfg.revisions + 1):
        critique = previous.critic_text or previous.reject_reason
        seed = sample_seed(problem.id, 10_000 + r, previous.seed)
        try:
            result = await h.solve(GenerationRequest(
                h.prompt.revise_messages(problem.question, previous.text, critique), n=1,
                temperature=cfg.sampling.temperature, top_p=cfg.sampling.top_p,
                max_tokens=cfg.sampling.max_tokens, seed=seed))
        except RequestFailed as e:  # the trace stays unrevised
            errors.append(f"revise request failed: {e}")
            return
        c: Completion = result.completions[0]
        revised = Attempt(c.text, c.completion_tokens, c.finish_reason, seed, r)
        await _check(problem, revised, h, cfg, accept, errors)
        attempts.append(revised)
        if revised.accepted:
            return
        previous = revised
