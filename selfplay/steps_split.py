"""The one rule that splits a solution into steps, for process supervision (prm/ rows), the critic
prompts that number steps and the revise prompt that quotes the step a critic blamed (selfplay.prompts).

A trace in the solver's format (`<think> ... </think> Answer: X`, selfplay.prompts) splits the way
the critic numbers it: every non-empty line of the reasoning is a step, and the text after
</think> (the answer) is one last step, so a critic's `first_wrong_step == len(reasoning lines)`
blames the answer here too. A free-form solution (a math model's prose) splits at numbered lines
("1.", "2)", "Step 3:") when it has at least two, else at paragraphs (blank lines) when it has at
least two, else at non-empty lines.

Steps are returned as character spans of the original text, so a step prefix is an exact prefix
of what the model wrote (what Monte-Carlo rollouts continue from).
"""

from __future__ import annotations

import re

from verifiers.steps import THINK_CLOSE, THINK_OPEN

_NUMBERED = re.compile(r"^[ \t]*(?:\d{1,3}[.)]|step\s+\d{1,3}\s*[:.)])", re.IGNORECASE | re.MULTILINE)
_PARAGRAPH_BREAK = re.compile(r"\n[ \t]*\n")


def step_spans(trace: str) -> list[tuple[int, int]]:
    """(start, end) offsets of each step in `trace`, in order, each with its whitespace trimmed."""
    start = trace.find(THINK_OPEN)
    end = trace.find(THINK_CLOSE, start + 1) if start >= 0 else -1
    if start >= 0 and end >= 0:
        body = start + len(THINK_OPEN)
        return _lines(trace, body, end) + _trimmed(trace, end + len(THINK_CLOSE), len(trace))
    numbered = [m.start() for m in _NUMBERED.finditer(trace)]
    if len(numbered) >= 2:
        bounds = ([0] if trace[: numbered[0]].strip() else []) + numbered + [len(trace)]
        return [s for a, b in zip(bounds, bounds[1:]) for s in _trimmed(trace, a, b)]
    breaks = [m for m in _PARAGRAPH_BREAK.finditer(trace)]
    if breaks:
        bounds = [0, *(x for m in breaks for x in (m.start(), m.end())), len(trace)]
        paragraphs = [s for a, b in zip(bounds[::2], bounds[1::2]) for s in _trimmed(trace, a, b)]
        if len(paragraphs) >= 2:
            return paragraphs
    return _lines(trace, 0, len(trace))


def split_steps(trace: str) -> list[str]:
    """The steps of `trace` as text (see the module docstring for the rule)."""
    return [trace[a:b] for a, b in step_spans(trace)]


def _lines(text: str, start: int, end: int) -> list[tuple[int, int]]:
    spans, pos = [], start
    while pos < end:
        nl = text.find("\n", pos, end)
        stop = end if nl < 0 else nl
        spans += _trimmed(text, pos, stop)
        pos = stop + 1
    return spans


def _trimmed(text: str, start: int, end: int) -> list[tuple[int, int]]:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return [(start, end)] if end > start else []
