"""Training products beyond SFT, made per problem from its finished traces: preference pairs
(`pairs/`, for DPO) and process supervision (`prm/`, "Let's verify step by step").

They are computed where a problem's trace rows are made and committed with them, so a killed and
resumed round has every pair and PRM row of a committed problem and none of the others.

Pairing rule. The chosen side is a kept trace (sft/); the rejected side a trace of the same
problem the verifier rejected (not a surplus or critic-rejected trace, which is right; not a
duplicate). Rejections that are not truncations come first (a truncated trace teaches "stop
early", rarely what a pair is for), then in sampling order. Kept trace i takes up to
`pairs.per_problem` rejections starting at i * per_problem (wrapping), so the kept traces spread
over the rejections instead of all pairing with the first ones.

Labelling rule (steps: selfplay.steps_split). Where the task has a step checker
(verifiers.steps: addition, multiplication), labels are exact: every step up to the first wrong
one is true, that one false, the rest dropped; a right trace is true throughout. Elsewhere (math,
puzzles, code), with `prm.rollouts` > 0, labels are Monte-Carlo estimates as in Math-Shepherd: from
each step prefix, `rollouts` continuations are sampled through the solver pool and verified; the
step is true when any reaches a verified answer (hard, `labels`) and `soft_labels` keeps the share.
The last step is the trace itself, labelled by its own verdict. Labelling stops at the first false
step, as for exact labels.
"""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import dataclass
from typing import Any, Awaitable, Callable

from selfplay.steps_split import step_spans


@dataclass(frozen=True)
class PairsConfig:
    """Preference pairs (the Hydra `pairs` node)."""

    enabled: bool = True
    per_problem: int = 2
    """Rejected traces each kept trace is paired with, at most."""

    def __post_init__(self):
        if self.per_problem < 1:
            raise ValueError(f"per_problem must be >= 1, got {self.per_problem}")


@dataclass(frozen=True)
class PrmConfig:
    """Process supervision (the Hydra `prm` node)."""

    enabled: bool = True
    """Write prm/ rows: exact labels on step-checked tasks cost nothing."""
    rollouts: int = 0
    """Monte-Carlo continuations per step on tasks without a step checker; 0 = no such labels.
    Costs about rollouts x steps x max_traces generations per problem (reported as rollout_tokens)."""
    max_traces: int = 4
    """Traces per problem labelled by Monte-Carlo (kept ones first, then rejected ones)."""
    max_steps: int = 32
    """Traces with more steps than this get no Monte-Carlo labels."""
    max_tokens: int = 256
    """Most tokens per rollout."""
    temperature: float = 1.0
    """Rollout sampling temperature."""

    def __post_init__(self):
        if self.rollouts < 0 or self.max_traces < 1 or self.max_steps < 1 or self.max_tokens < 1:
            raise ValueError("prm: rollouts must be >= 0; max_traces, max_steps and max_tokens >= 1")


def _id(*parts: str) -> str:
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:20]


def _is_duplicate(row: dict[str, Any]) -> bool:
    return row["reject_reason"].startswith("duplicate")


def pair_rows(sft: list[dict[str, Any]], rejected: list[dict[str, Any]], cfg: PairsConfig) -> list[dict[str, Any]]:
    """Preference pairs of one problem from its trace rows (the rule in the module docstring)."""
    if not cfg.enabled or not sft:
        return []
    losers = [r for r in rejected if not r["verdict"]["correct"] and not _is_duplicate(r)]
    losers.sort(key=lambda r: r["finish_reason"] == "length")  # stable: sampling order otherwise
    if not losers:
        return []
    pairs = []
    for i, chosen in enumerate(sft):
        picks = {(i * cfg.per_problem + j) % len(losers) for j in range(min(cfg.per_problem, len(losers)))}
        for j in sorted(picks):
            loser = losers[j]
            pairs.append({
                "id": _id("pair", chosen["id"], loser["id"]), "problem_id": chosen["problem_id"], "task": chosen["task"],
                "prompt": chosen["messages"][:-1], "chosen": chosen["messages"][-1:], "rejected": loser["messages"][-1:],
                "chosen_id": chosen["id"], "rejected_id": loser["id"], "rejected_reason": loser["reject_reason"],
                "rejected_finish_reason": loser["finish_reason"], "round": chosen["round"],
                "config_hash": chosen["config_hash"],
            })
    return pairs


def has_step_checker(task: str) -> bool:
    import verifiers
    from verifiers.steps import StepVerifier

    try:
        return isinstance(verifiers.get(task), StepVerifier)
    except (KeyError, ValueError):
        return False


Rollout = Callable[[Any, str, int, int], Awaitable[tuple[int, int] | None]]
"""(problem, trace prefix, rollouts, seed) -> (continuations that reached a verified answer, tokens),
or None when the prefix cannot be continued (a prompt too long for the model)."""


async def prm_rows(problem, traces: list[dict[str, Any]], cfg: PrmConfig, rollout: Rollout | None) -> list[dict[str, Any]]:
    """Process-supervision rows of one problem from its trace rows (sft first, then rejected)."""
    traces = [t for t in traces if not _is_duplicate(t)]
    if not cfg.enabled or not traces:
        return []
    if has_step_checker(traces[0]["task"]):
        return [r for r in (_exact_row(t) for t in traces) if r is not None]
    if rollout is None or cfg.rollouts == 0:
        return []
    chosen = [t for t in traces if len(step_spans(_text(t))) <= cfg.max_steps][: cfg.max_traces]
    rows = await asyncio.gather(*(_monte_carlo_row(problem, t, cfg, rollout) for t in chosen))
    return [r for r in rows if r is not None]


def _text(trace: dict[str, Any]) -> str:
    return trace["messages"][-1]["content"]


def _row(trace: dict[str, Any], steps: list[str], labels: list[bool], soft: list[float], source: str,
         rollouts: int = 0, tokens: int = 0) -> dict[str, Any]:
    return {
        "id": _id("prm", trace["id"]), "problem_id": trace["problem_id"], "task": trace["task"], "trace_id": trace["id"],
        "prompt": trace["question"], "completions": steps, "labels": labels, "soft_labels": soft,
        "label_source": source, "rollouts": rollouts, "rollout_tokens": tokens, "round": trace["round"],
        "config_hash": trace["config_hash"],
    }


def _exact_row(trace: dict[str, Any]) -> dict[str, Any] | None:
    from verifiers.steps import parse_steps

    text, verdict = _text(trace), trace["verdict"]
    steps = [text[a:b] for a, b in step_spans(text)]
    if not steps:
        return None
    if verdict["correct"]:
        return _row(trace, steps, [True] * len(steps), [1.0] * len(steps), "step_checker")
    wrong = verdict["first_wrong_step"]
    if wrong is None:  # truncated, or a bad problem: no step to blame
        return None
    # The checker counts step-shaped lines, then the answer; map its index onto our steps. Past the
    # written step lines (a missing step, a wrong answer) the blame falls on the step after them.
    step_lines = [i for i, s in enumerate(steps) if parse_steps(trace["task"], s)]
    at = step_lines[wrong] if wrong < len(step_lines) else min(step_lines[-1] + 1 if step_lines else 0, len(steps) - 1)
    return _row(trace, steps[: at + 1], [True] * at + [False], [1.0] * at + [0.0], "step_checker")


async def _monte_carlo_row(problem, trace: dict[str, Any], cfg: PrmConfig, rollout: Rollout) -> dict[str, Any] | None:
    text = _text(trace)
    spans = step_spans(text)
    if not spans:
        return None
    steps = [text[a:b] for a, b in spans]
    labels, soft, tokens = [], [], 0
    for i in range(len(spans) - 1):
        prefix = text[: spans[i + 1][0]]  # up to the next step, with the separator the model wrote
        seed = int.from_bytes(hashlib.sha256(f"prm|{trace['id']}|{i}".encode()).digest()[:4], "little")
        outcome = await rollout(problem, prefix, cfg.rollouts, seed)
        if outcome is None:  # no evidence either way: label only the steps before
            break
        hits, used = outcome
        tokens += used
        labels.append(hits > 0)
        soft.append(hits / cfg.rollouts)
        if not labels[-1]:
            break
    else:  # every prefix can still succeed: the whole trace is labelled by its verdict
        labels.append(bool(trace["verdict"]["correct"]))
        soft.append(1.0 if labels[-1] else 0.0)
    if not labels:
        return None
    return _row(trace, steps[: len(labels)], labels, soft, "monte_carlo", cfg.rollouts, tokens)


def engine_rollout(generate, verify, tokenizer, cfg: PrmConfig, prompt=None) -> Rollout:
    """A Rollout through the solver pool (`generate`) and verifier (`verify(problem, text)`).

    The prompt is the solver's chat prompt rendered by the model's own template, with the trace
    prefix appended as the start of the assistant's turn, so the model continues its own text.
    `prompt`: the round's selfplay.prompts.PromptConfig (None = the reference style)."""
    from selfplay.prompts import PromptConfig
    from selfplay.engines.base import GenerationRequest, RequestFailed, render_chat

    async def rollout(problem, prefix: str, n: int, seed: int) -> tuple[int, int] | None:
        rendered = render_chat(tokenizer, (prompt or PromptConfig()).solver_messages(problem.question))
        bos = getattr(tokenizer, "bos_token", None)
        if bos and rendered.startswith(bos) and tokenizer("x", add_special_tokens=True)["input_ids"][:1] == [tokenizer.bos_token_id]:
            rendered = rendered[len(bos):]  # the engine adds it again to a text prompt
        try:
            result = await generate(GenerationRequest(rendered + prefix, n=n, temperature=cfg.temperature,
                                                      max_tokens=cfg.max_tokens, seed=seed))
        except RequestFailed:
            return None
        verdicts = await asyncio.gather(*(verify(problem, prefix + c.text) for c in result.completions
                                          if c.finish_reason != "length"))
        return sum(v.correct for v in verdicts), sum(c.completion_tokens for c in result.completions)

    return rollout


def product_stats(round_dir: str) -> dict[str, Any]:
    """Pairs and PRM rows of a round, for stats.json (from the committed shards)."""
    from selfplay.shards import load_rows

    prm = load_rows(round_dir, "prm", ["labels", "label_source", "rollout_tokens"]).to_pylist()
    labels = [x for r in prm for x in r["labels"]]
    sources: dict[str, int] = {}
    for r in prm:
        sources[r["label_source"]] = sources.get(r["label_source"], 0) + 1
    return {"pairs": load_rows(round_dir, "pairs", ["id"]).num_rows,
            "prm": {"rows": len(prm), "steps": len(labels), "true_share": sum(labels) / len(labels) if labels else None,
                    "label_source": sources, "rollout_tokens": sum(r["rollout_tokens"] for r in prm)}}
