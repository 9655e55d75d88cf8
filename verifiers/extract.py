"""Find the final answer in a whole model output.

Shared by the math, puzzle and step verifiers: one definition of "what the model answered".
Order of evidence, strongest first:

1. the last brace-matched ``\\boxed{...}`` / ``\\fbox{...}`` (nested braces handled); several
   boxes on the final line joined only by "and"/"or"/commas are one multi-part answer;
2. the last "final answer is ...", "the answer is ...", "answer: ..." phrase;
3. a bold markdown ``**...**`` span on the last non-empty line.

An earlier intermediate number never counts: there is no "last number in the text" fallback,
so a completion without an answer gives None. An empty box gives None.

Cost: only the last ``TAIL_CHARS`` characters are scanned (final answers live at the end), and
every step is ``str.rfind`` / a brace walk or a regex without nested quantifiers, so a 5 MB
completion costs about as much as a 64 KB one.
"""

from __future__ import annotations

import re

TAIL_CHARS = 65_536
"""Characters scanned from the end of a completion; earlier text cannot hold the final answer
in any output we accept, and the cap keeps huge completions cheap."""

MAX_ANSWER_CHARS = 4_000
"""A longer "answer" is not an answer; the caller gets None rather than a wall of text."""

MAX_BOX_PARTS = 16
"""Most boxes joined into one multi-part answer ("x = \\boxed{2} or x = \\boxed{-2}")."""

_BOX_COMMAND = re.compile(r"\\(?:boxed|fbox)(?![a-zA-Z])")
_BARE_TOKEN = re.compile(r"[^\s$\\]{1,200}")
_PHRASES = re.compile(
    r"final answer is|final answer\s*:|answer is|answer\s*:|answer\s*=", re.IGNORECASE
)
_BOLD = re.compile(r"\*\*([^*\n]{1,500})\*\*")
_BOX_JOINER = re.compile(r"^[\s$,;]*(?:,|and|or|&|\\text\{\s*(?:and|or)\s*\}|\\quad|\\qquad)?[\s$,;]*$")
_WRAPPERS = (("\\(", "\\)"), ("\\[", "\\]"), ("$$", "$$"), ("$", "$"), ("**", "**"), ("`", "`"))
_TRAILING = " \t\r\n.,;:?*"  # not "!": "5!" is a factorial
_LEADING = " \t\r\n:*"  # not ".": ".125" is a number


def final_answer(text: str) -> str | None:
    """The final answer in `text`, cleaned of `$` delimiters and trailing punctuation, or None."""
    if not isinstance(text, str) or not text:
        return None
    tail = text[-TAIL_CHARS:]
    for find in (_boxed_answer, _phrase_answer, _bold_answer):
        found = find(tail)
        if found is not None:
            answer = _clean(found)
            if not answer or len(answer) > MAX_ANSWER_CHARS:
                return None
            return answer
    return None


def _boxed_answer(text: str) -> str | None:
    boxes = _boxes(text)
    if not boxes:
        return None
    start, end, content = boxes[-1]
    parts = [content]
    # Walk back over boxes on the same line joined only by "and"/"or"/commas:
    # "x = \boxed{2} or x = \boxed{-2}" is one answer with two parts.
    for prev_start, prev_end, prev_content in reversed(boxes[:-1]):
        between = text[prev_end:start]
        between = re.sub(r"[a-zA-Z]\s*=", "", between, count=2)
        if "\n" in between or not _BOX_JOINER.match(between):
            break
        parts.append(prev_content)
        start = prev_start
        if len(parts) >= MAX_BOX_PARTS:
            break
    parts.reverse()
    if any(not p.strip() for p in parts):
        return ""
    return ", ".join(p.strip() for p in parts)


def _boxes(text: str) -> list[tuple[int, int, str]]:
    """(start, end, content) of every balanced box in the text, in order."""
    closing = _brace_pairs(text)
    found: list[tuple[int, int, str]] = []
    pos = 0
    for command in _BOX_COMMAND.finditer(text):
        start = command.start()
        if start < pos:
            continue  # a box inside an earlier box's content
        body_start = command.end()
        while body_start < len(text) and text[body_start] == " ":
            body_start += 1
        if body_start < len(text) and text[body_start] == "{":
            end = closing.get(body_start, -1)
            if end >= 0:
                found.append((start, end + 1, text[body_start + 1 : end]))
                pos = end + 1
        elif body_start > command.end():
            # "\boxed 5": a box without braces holds one token.
            token = _BARE_TOKEN.match(text, body_start)
            if token:
                found.append((start, token.end(), token.group()))
                pos = token.end()
    return found


def _brace_pairs(text: str) -> dict[int, int]:
    """Index of each "{" -> index of its matching "}", in one pass.

    One pass over the whole tail rather than a walk per box: a text of thousands of
    unbalanced boxes would otherwise cost quadratic time. Escaped braces (\\{ \\}) are skipped.
    """
    pairs: dict[int, int] = {}
    stack: list[int] = []
    for match in re.finditer(r"\\.|[{}]", text, re.DOTALL):
        token = match.group()
        if token == "{":
            stack.append(match.start())
        elif token == "}" and stack:
            pairs[stack.pop()] = match.start()
    return pairs


def _phrase_answer(text: str) -> str | None:
    last = None
    for last in _PHRASES.finditer(text):
        pass
    if last is None:
        return None
    rest = text[last.end() :].lstrip(" \t:*")
    if rest.startswith("$"):
        closing = _dollar_span(rest)
        if closing is not None:
            return closing
    line = rest.split("\n", 1)[0]
    if not line.strip() and "\n" in rest:
        # "Answer:\n42" puts the answer on the next line.
        line = rest.split("\n", 2)[1] if rest.count("\n") >= 1 else ""
    return _cut_sentence(line)


def _dollar_span(text: str) -> str | None:
    delim = "$$" if text.startswith("$$") else "$"
    end = text.find(delim, len(delim))
    if end < 0:
        return None
    return text[len(delim) : end]


def _cut_sentence(line: str) -> str:
    # A sentence ends at ". " / "; " / end of line; a "." followed by a digit is a decimal
    # point, and "!" stays (a factorial).
    match = re.search(r"[.;?](?=\s|$)", line)
    return line[: match.start()] if match else line


def _bold_answer(text: str) -> str | None:
    lines = [ln for ln in text[-4_000:].splitlines() if ln.strip()]
    if not lines:
        return None
    bolds = _BOLD.findall(lines[-1])
    return bolds[-1] if bolds else None


def strip_delimiters(answer: str) -> str:
    """A bare answer without `$`, `\\(...\\)`, a whole-answer box, bold marks or trailing
    punctuation: "$\\frac12$." -> "\\frac12"."""
    return _clean(answer) if isinstance(answer, str) else ""


def _clean(answer: str) -> str:
    answer = answer.strip()
    changed = True
    while changed:
        changed = False
        stripped = answer.rstrip(_TRAILING).lstrip(_LEADING)
        if stripped != answer:
            answer, changed = stripped, True
        for opening, closing in _WRAPPERS:
            if answer.startswith(opening) and answer.endswith(closing) and len(answer) >= len(opening) + len(closing):
                answer, changed = answer[len(opening) : len(answer) - len(closing)].strip(), True
                break
        inner = _whole_box(answer)
        if inner is not None:
            answer, changed = inner.strip(), True
        if answer.endswith("$") and answer.count("$") % 2 == 1:
            answer, changed = answer[:-1], True
        if answer.startswith("$") and answer.count("$") % 2 == 1:
            answer, changed = answer[1:], True
    return answer


def _whole_box(answer: str) -> str | None:
    """The content when `answer` is exactly one box (a box nested in a box), else None."""
    boxes = _boxes(answer)
    if len(boxes) == 1 and boxes[0][0] == 0 and boxes[0][1] == len(answer):
        return boxes[0][2]
    return None
