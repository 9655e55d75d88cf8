"""Every prompt and output format in one place: the solver's trace, the critic's verdict.

The trace format is the contract between the solver, the verifiers and the SFT rows (written by
`format_trace`, which is verifiers.steps.format_trace):

    <think>
    step lines ...
    </think>
    Answer: 525

The critic reads the question and a trace with numbered steps and answers with one line,
`Verdict: correct` or `Verdict: wrong at step 2`, optionally followed by a short critique.
Steps are numbered from 1 in the text a model sees; `first_wrong_step` is 0-based in code.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# The trace format is defined once, beside the step checker that reads it (verifiers must not
# import selfplay, so the definition lives there and the prompts take it from there).
from verifiers.steps import ANSWER_PREFIX, THINK_CLOSE, THINK_OPEN, format_trace  # noqa: F401

CRITIC_PREFIX = "Check: "


def format_answer_only(answer: str) -> str:
    """The assistant text without reasoning (the control for 'do traces matter')."""
    return f"{ANSWER_PREFIX}{answer}"


def reasoning_of(trace: str) -> str:
    """The text between <think> and </think> ('' when the trace has none)."""
    start = trace.find(THINK_OPEN)
    end = trace.find(THINK_CLOSE, start + 1)
    if start < 0 or end < 0:
        return ""
    return trace[start + len(THINK_OPEN) : end].strip("\n")


def solver_messages(question: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": question}]


def critic_messages(question: str, trace: str) -> list[dict[str, str]]:
    """The critic sees the question and the trace's step lines, numbered from 1."""
    lines = [ln for ln in reasoning_of(trace).splitlines() if ln.strip()]
    numbered = "\n".join(f"{i + 1}. {ln}" for i, ln in enumerate(lines))
    answer = trace.rsplit(ANSWER_PREFIX, 1)[-1].strip() if ANSWER_PREFIX in trace else ""
    return [{"role": "user", "content": f"{CRITIC_PREFIX}{question}\n{numbered}\n{ANSWER_PREFIX}{answer}"}]


@dataclass(frozen=True)
class CriticVerdict:
    correct: bool | None
    """The critic's call; None when its output could not be parsed."""
    first_wrong_step: int | None = None
    """0-based index of the step the critic blames (len(steps) blames the answer)."""
    critique: str = ""
    """Free text after the verdict line (may be empty for small models)."""
    score: float | None = None
    """Probability-like confidence that the trace is correct, where the engine gives one."""


def format_critic(correct: bool, first_wrong_step: int | None = None, critique: str = "") -> str:
    """The verdict line a perfect critic writes (the critic's training target). A wrong trace whose
    first wrong step nobody knows (no step checker: math, code, puzzles; a truncated trace; a
    timeout) gets the verdict alone, "Verdict: wrong": naming a step there would teach a made-up one."""
    if correct:
        line = "Verdict: correct"
    else:
        line = "Verdict: wrong" if first_wrong_step is None else f"Verdict: wrong at step {first_wrong_step + 1}"
    return f"{line}\n{critique}".rstrip("\n")


_VERDICT = re.compile(r"Verdict:\s*(correct|wrong)(?:\s+at\s+step\s+(\d{1,4}))?", re.IGNORECASE)


def parse_critic(text: str) -> CriticVerdict:
    m = _VERDICT.search(text[:2000])
    if not m:
        return CriticVerdict(None, None, text.strip()[:500])
    correct = m.group(1).lower() == "correct"
    step = int(m.group(2)) - 1 if (not correct and m.group(2)) else None
    return CriticVerdict(correct, step, text[m.end() :].strip()[:500])


def revise_messages(question: str, trace: str, critique: str) -> list[dict[str, str]]:
    """Ask the solver to try again, showing its rejected trace and what the critic said."""
    return [
        {"role": "user", "content": question},
        {"role": "assistant", "content": trace},
        {"role": "user", "content": f"{critique.strip() or 'That is wrong.'}\nTry again: {question}"},
    ]
