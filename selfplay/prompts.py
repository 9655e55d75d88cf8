"""Every text the models see and every format they answer in: solver, critic and revise prompts in
two styles (the Hydra group `prompt`), the critic's verdict line, its parser and its score.

Styles (`PromptConfig.style`, conf/prompt/<style>.yaml):

- "reference": the compact format the project's tiny model is trained on (selfplay.bootstrap). The
  solver gets the bare question; the critic gets `Check: {question}`, the trace's step lines
  numbered from 1 and its answer line; a revision is the question again after the critique.
- "instruct": for chat LLMs. The solver is told to reason step by step and box its final answer
  (`\\boxed{}`, which verifiers.extract reads); the critic is told to review each step of a
  solution shown as numbered steps, name the first wrong one and end with one verdict line; a
  revision quotes the critique and the step it blamed.

The trace format is the contract between the solver, the verifiers and the SFT rows (written by
`format_trace`, which is verifiers.steps.format_trace):

    <think>
    step lines ...
    </think>
    Answer: 525

Steps. A solution is split into steps by one rule, selfplay.steps_split (the trace format's step
lines and then its answer; else numbered lines; else paragraphs; else lines), shared by the
instruct critic's numbering, the process labels (prm/ rows) and the revise prompt's quote. The
reference critic prompt numbers the step lines of the trace format, which that rule gives too.
Steps are numbered from 1 in the text a model sees; `first_wrong_step` is 0-based in code.

The verdict line is the same in both styles, `Verdict: correct` or `Verdict: wrong at step 2`
(`Verdict: wrong` where the step is unknown), optionally followed by a short critique.
`parse_critic` also reads what chat models write around it (see its docstring), and
`critic_score` turns the log-probabilities at the verdict word into the probability of "correct".
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, replace
from typing import Mapping, Sequence

from selfplay.steps_split import split_steps

# The trace format is defined once, beside the step checker that reads it (verifiers must not
# import selfplay, so the definition lives there and the prompts take it from there).
from verifiers.steps import ANSWER_PREFIX, THINK_CLOSE, THINK_OPEN, format_trace  # noqa: F401

CRITIC_PREFIX = "Check: "
"""How the reference critic prompt starts."""

STYLES = ("reference", "instruct")

VERDICT_LOGPROBS = 20
"""Top log-probabilities a critic request asks for per token: both verdict words, in the spellings
a chat model's tokenizer has for them, fit in the top 20 whenever either is at all likely."""

SOLVER_INSTRUCTION = (
    "Solve the problem below. Reason step by step, one step per numbered line (1., 2., ...). "
    "Then give the final answer on its own last line as \\boxed{answer}."
)
CRITIC_INSTRUCTION = (
    "Review the solution below, written by someone else, one step at a time: is each step correct, "
    "and does it follow from the problem and the steps before it? If a step is wrong, name the first "
    "wrong step and say briefly why (the final answer counts as the last step). End your reply with "
    "exactly one verdict line, either\n"
    "Verdict: correct\n"
    "or\n"
    "Verdict: wrong at step N\n"
    "where N is the number of the first wrong step."
)
REVISE_INSTRUCTION = (
    "Write a corrected solution from the start. Reason step by step, one step per numbered line, "
    "and give the final answer on its own last line as \\boxed{answer}."
)


@dataclass(frozen=True)
class PromptConfig:
    """Which prompts the models see (the Hydra group `prompt`: conf/prompt/<style>.yaml)."""

    style: str = "reference"
    """"reference": the compact format the project's tiny model is trained on (the bare question;
    `Check: ` and numbered step lines for the critic). "instruct": instructions a chat LLM follows
    (reason step by step, final answer in \\boxed{}; a critic that reviews each step, names the first
    wrong one and ends with one verdict line; a revision that quotes the critique)."""

    def __post_init__(self):
        if self.style not in STYLES:
            raise ValueError(f"style must be one of {', '.join(STYLES)}; got {self.style!r}")

    def solver_messages(self, question: str) -> list[dict[str, str]]:
        if self.style == "reference":
            return solver_messages(question)
        return [{"role": "user", "content": f"{SOLVER_INSTRUCTION}\n\nProblem:\n{question}"}]

    def critic_messages(self, question: str, trace: str) -> list[dict[str, str]]:
        if self.style == "reference":
            return critic_messages(question, trace)
        steps = "\n".join(f"Step {i + 1}: {s}" for i, s in enumerate(split_steps(trace))) or "(empty)"
        return [{"role": "user", "content": f"{CRITIC_INSTRUCTION}\n\nProblem:\n{question}\n\n"
                                            f"Solution, split into numbered steps:\n{steps}"}]

    def revise_messages(self, question: str, trace: str, critique: str) -> list[dict[str, str]]:
        """The solver's prompt, its rejected trace, and a turn asking for another try after the
        critique; the instruct style quotes the critique and the step it blames."""
        if self.style == "reference":
            return revise_messages(question, trace, critique)
        quoted = "\n".join(f"> {line}" for line in (critique.strip() or "The solution is wrong.").splitlines())
        blamed = parse_critic(critique).first_wrong_step
        steps = split_steps(trace)
        step = (f"\n\nThe reviewer named step {blamed + 1} as the first wrong one:\n> {steps[blamed]}"
                if blamed is not None and blamed < len(steps) else "")
        return self.solver_messages(question) + [
            {"role": "assistant", "content": trace},
            {"role": "user", "content": f"A reviewer checked your solution and wrote:\n{quoted}{step}\n\n{REVISE_INSTRUCTION}"},
        ]


# ------------------------------------------------------------------------------ reference style


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
    """The reference style's solver prompt: the bare question."""
    return [{"role": "user", "content": question}]


def critic_messages(question: str, trace: str) -> list[dict[str, str]]:
    """The reference critic sees the question and the trace's step lines, numbered from 1."""
    lines = [ln for ln in reasoning_of(trace).splitlines() if ln.strip()]
    numbered = "\n".join(f"{i + 1}. {ln}" for i, ln in enumerate(lines))
    answer = trace.rsplit(ANSWER_PREFIX, 1)[-1].strip() if ANSWER_PREFIX in trace else ""
    return [{"role": "user", "content": f"{CRITIC_PREFIX}{question}\n{numbered}\n{ANSWER_PREFIX}{answer}"}]


def revise_messages(question: str, trace: str, critique: str) -> list[dict[str, str]]:
    """Ask the solver to try again, showing its rejected trace and what the critic said."""
    return [
        {"role": "user", "content": question},
        {"role": "assistant", "content": trace},
        {"role": "user", "content": f"{critique.strip() or 'That is wrong.'}\nTry again: {question}"},
    ]


# ------------------------------------------------------------------------------ the critic's verdict


@dataclass(frozen=True)
class CriticVerdict:
    correct: bool | None
    """The critic's call; None when its output could not be parsed."""
    first_wrong_step: int | None = None
    """0-based index of the step the critic blames (len(steps) blames the answer)."""
    critique: str = ""
    """Free text after the verdict line (may be empty for small models)."""
    score: float | None = None
    """The critic's probability that the trace is correct (`critic_score`); None when its output
    could not be parsed."""


def format_critic(correct: bool, first_wrong_step: int | None = None, critique: str = "") -> str:
    """The verdict line a perfect critic writes (the critic's training target). A wrong trace whose
    first wrong step nobody knows (no step checker: math, code, puzzles; a truncated trace; a
    timeout) gets the verdict alone, "Verdict: wrong": naming a step there would teach a made-up one."""
    if correct:
        line = "Verdict: correct"
    else:
        line = "Verdict: wrong" if first_wrong_step is None else f"Verdict: wrong at step {first_wrong_step + 1}"
    return f"{line}\n{critique}".rstrip("\n")


PARSED_CHARS = 20_000
"""Critic output read at most: a verdict past this is no verdict (keeps a runaway output cheap)."""

_MARKUP = r"[\s*_`#>:=\-|]*"  # markdown and punctuation chat models put around a verdict
_WORD = r"(?P<word>not\s+correct|incorrect|correct|wrong)\b"
_VERDICT_LINE = re.compile(
    rf"\bverdict\b{_MARKUP}(?:(?:the\s+)?(?:solution|answer|trace|proof|reasoning)\s+is\s+)?{_WORD}(?P<rest>[^\n]*)",
    re.IGNORECASE)
_BARE_LINE = re.compile(rf"^[ \t*_#>]*{_WORD}(?P<rest>(?:[ \t*_]+at[ \t*_]+step[ \t*_]*\d{{1,4}})?)[ \t*_.!]*$",
                        re.IGNORECASE | re.MULTILINE)
_STEP = re.compile(r"\bstep[\s*_`#]*(\d{1,4})\b", re.IGNORECASE)
_NAMED_STEP = re.compile(
    r"(?<!no )(?<!any )\b(?:first\s+(?:wrong|incorrect|erroneous|faulty)\s+step|error|mistake)\b[^\n.]{0,20}?\bstep[\s*_`#]*(?P<a>\d{1,4})"
    r"|\bstep[\s*_`#]*(?P<b>\d{1,4})[\s*_`#]*(?:is|was)\s+(?:incorrect|wrong|not\s+correct|erroneous|flawed)",
    re.IGNORECASE)


def _verdict_match(text: str) -> re.Match | None:
    """Where the verdict is: the last "Verdict ... correct|wrong" (a chat model may mention the
    format before it answers), else the last line that is only a verdict word."""
    head = text[:PARSED_CHARS]
    found = list(_VERDICT_LINE.finditer(head)) or list(_BARE_LINE.finditer(head))
    return found[-1] if found else None


def parse_critic(text: str) -> CriticVerdict:
    """A critic's output as a verdict. It reads the reference critic's line and what chat models
    write around it: markdown and bold (`**Verdict:** **wrong at step 3**`), a heading with the
    verdict on its own line (`## Verdict\\nCorrect`), "incorrect" or "not correct" for wrong, a
    trailing explanation, and a step named elsewhere when the verdict line has none ("Step 3 is
    incorrect", "the first wrong step is step 3"); with no verdict line at all, a step named wrong
    is the verdict. The last verdict line wins. None (unparsed) when there is no verdict."""
    text = text if isinstance(text, str) else ""
    m = _verdict_match(text)
    named = _NAMED_STEP.search(text[:PARSED_CHARS])
    named_step = int(named["a"] or named["b"]) - 1 if named else None
    if m is None:
        if named_step is None:
            return CriticVerdict(None, None, text.strip()[:500])
        return CriticVerdict(False, max(named_step, 0), text.strip()[:500])
    correct = m["word"].lower() == "correct"
    step = None
    if not correct:
        on_line = _STEP.search(m["rest"])
        step = int(on_line[1]) - 1 if on_line else named_step
        step = None if step is None else max(step, 0)
    critique = (text[: m.start()] + text[m.end():]).strip() if m.start() else text[m.end():].strip()
    return CriticVerdict(correct, step, critique[:500])


_CORRECT_WORDS = ("correct",)
_WRONG_WORDS = ("wrong", "incorrect", "not correct")


def _verdict_class(token: str) -> str | None:
    """"correct" or "wrong" when the token could start that verdict word ("c", " Correct", "**wr",
    "incorrect"), else None."""
    t = token.strip(" \t\n*_`#:>\"'").lower()
    if not t:
        return None
    for name, words in (("correct", _CORRECT_WORDS), ("wrong", _WRONG_WORDS)):
        if any(w.startswith(t) or t.startswith(w) for w in words):
            return name
    return None


def critic_score(text: str, logprobs: Sequence[Mapping[str, float]] | None, call: CriticVerdict) -> float | None:
    """The critic's probability that the trace is correct: P(correct) / (P(correct) + P(wrong)) at
    the token where its verdict word starts, each side summed over the alternatives that could
    start that word (a character-level model's "c" / "w"; a chat model's " correct", "Correct",
    " wrong", " incorrect"...). `logprobs`: per generated token, {token text: log-probability}
    (selfplay.engines.base.Completion.logprobs). The generated tokens are found in `text` by
    walking it: at each position the likeliest alternative that the text continues with is the
    token the critic wrote (exact for greedy decoding, which the critic uses); one that does not
    appear in the text (an end-of-turn token) is stepped over.

    Without log-probabilities (not asked for, or the verdict's token cannot be found, or neither
    verdict word is among the alternatives there) the score falls back to the parsed verdict, 1.0
    for correct and 0.0 for wrong: a ranking with ties, no better than the calls. None when the
    output has no verdict."""
    if call.correct is None:
        return None
    fallback = 1.0 if call.correct else 0.0
    m = _verdict_match(text) if logprobs else None
    if m is None:
        return fallback
    at, pos = m.start("word"), 0
    for alternatives in logprobs:
        written = [t for t in alternatives if t and text.startswith(t, pos)]
        if not written:
            continue
        token = max(written, key=alternatives.get)
        if pos <= at < pos + len(token):
            mass = {"correct": 0.0, "wrong": 0.0}
            for t, lp in alternatives.items():
                kind = _verdict_class(t)
                if kind:
                    mass[kind] += math.exp(lp)
            total = mass["correct"] + mass["wrong"]
            return mass["correct"] / total if total > 0 else fallback
        pos += len(token)
        if pos > at:
            break
    return fallback


def judge_completion(completion) -> CriticVerdict:
    """The verdict in a critic completion (selfplay.engines.base.Completion), with its score."""
    call = parse_critic(completion.text)
    return replace(call, score=critic_score(completion.text, getattr(completion, "logprobs", None), call))
