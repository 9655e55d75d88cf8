"""Find the final answer in a whole model output.

Shared by the math, puzzle and step verifiers: one definition of "what the model answered".

Markers, and which one wins:

- a box: the last brace-matched ``\\boxed{...}`` / ``\\fbox{...}`` (nested braces handled);
  several boxes on one line joined only by "and"/"or"/commas are one multi-part answer;
- a closing marker: "final answer" (``Final Answer: The final answer is $x$``,
  ``**Final Answer**``), a line starting "Answer:", a GSM8K ``#### x`` line, and ``A: x`` as
  the last line of the output;
- a phrase: "the answer is ...", "answer: ...", "Answer \\[ x \\]";
- a bold markdown ``**...**`` span on the last non-empty line.

The last closing marker wins over an earlier box (an intermediate ``\\boxed{255}`` before
"The final answer is $10,455$"); a box wins over a plain phrase anywhere; among phrases the
last one wins. After a marker the answer is its first math span (``$..$``, ``\\(..\\)``,
``\\[..\\]``, possibly on the next line) or the rest of the sentence with trailing prose
(", since ...", " because ...") cut off. A hedge after the answer on the same line ("$2$ (or
maybe $3$)") is kept as "2 \\text{ or } 3", so the math verifier sees two answers, not one.

An earlier intermediate number never counts: there is no "last number in the text" fallback,
so a completion without an answer gives None. An empty box gives None. `closing_math` (used by
the math verifier only) reads a last sentence with exactly one math span.

Cost: only the last ``TAIL_CHARS`` characters are scanned (final answers live at the end), and
every step is ``str.rfind`` / a brace walk or a regex without nested quantifiers, so a 5 MB
completion costs about as much as a 64 KB one.
"""

from __future__ import annotations

import re

TAIL_CHARS = 65_536
"""Characters scanned from the end of a completion; earlier text cannot hold the final answer
in any output we accept, and the cap keeps huge completions cheap."""

MAX_ANSWER_CHARS = 2_000
"""A longer "answer" is not an answer; the caller gets None rather than a wall of text. The math
parser refuses longer answers (gold ones too) by the same bound, so its cost stays bounded."""

MAX_BOX_PARTS = 16
"""Most boxes joined into one multi-part answer ("x = \\boxed{2} or x = \\boxed{-2}")."""

SPAN_CHARS = 2_000
"""Longest math span read after a marker or in a closing sentence."""

_BOX_COMMAND = re.compile(r"\\(?:boxed|fbox)(?![a-zA-Z])")
_BARE_TOKEN = re.compile(r"[^\s$\\]{1,200}")
_CLOSING = re.compile(
    r"final\s+answer(?:\s*\*\*)?(?:\s+is\b\s*:?|\s*[:=]|(?=[ \t]*\r?\n)|[ \t]+(?=\$|\\\[|\\\())"
    r"|^[ \t]*(?:\*\*|#{1,6}[ \t]*)?answer[ \t]*(?:\*\*)?[ \t]*:"
    r"|^[ \t]*####[ \t]*(?=[-+$\\\d.(])",
    re.IGNORECASE | re.MULTILINE,
)
_PHRASES = re.compile(
    r"answer\s+is\b|answer\s*:|answer\s*=|\banswer\b(?:\s*\*\*)?\s*(?=\\\[|\$\$)", re.IGNORECASE
)
_LAST_LINE_A = re.compile(r"^[ \t]*(?:\*\*)?A[ \t]*:(?:\*\*)?[ \t]*(?=\S)", re.MULTILINE)
_BOLD = re.compile(r"\*\*([^*\n]{1,500})\*\*")
_BOX_JOINER = re.compile(r"^[\s$,;]*(?:,|and|or|&|\\text\{\s*(?:and|or)\s*\}|\\quad|\\qquad)?[\s$,;]*$")
_WRAPPERS = (("\\(", "\\)"), ("\\[", "\\]"), ("$$", "$$"), ("$", "$"), ("**", "**"), ("`", "`"))
_TRAILING = " \t\r\n.,;:?*"  # not "!": "5!" is a factorial
_LEADING = " \t\r\n:*"  # not ".": ".125" is a number
_SENTENCE_END = re.compile(r"(?<!\.)[.;?](?!\.)(?=\s|$)")
_PROSE_TAIL = re.compile(
    r",?\s+\(?(?:since|because|which|where|as|so|hence|thus|therefore|given|meaning|i\.e\.|that is"
    r"|due|when|from|for|by|using|after|per)\b", re.IGNORECASE)
_HEDGE = re.compile(r"\b(?:or|maybe|perhaps|possibly|alternatively|although|but|could|might|otherwise)\b",
                    re.IGNORECASE)
_HEDGED_VALUE = re.compile(r"\$([^$\n]{1,200})\$|\\\((.{1,200}?)\\\)|(?<![\w.])(-?\d+(?:\.\d+)?)")
_CONCLUDING = re.compile(r"\b(?:so|thus|therefore|hence|total|altogether|answer|result|final|in all)\b", re.IGNORECASE)
_NUMBER = re.compile(r"(?<![\w.,])-?\d{1,3}(?:,\d{3})+(?:\.\d+)?%?(?![\w,]|\.\d)|(?<![\w.,])-?\d+(?:\.\d+)?%?(?![\w,]|\.\d)")
_SPECIAL_TOKENS = re.compile(r"(?:<\|[a-z_]{1,30}\|>|</?s>|\s)+$")
_NAME_SPAN = re.compile(r"\s*(?:\\?[a-zA-Z]+(?:_\{?\w+\}?)?(?:\([a-z]\))?)\s*")
_SPAN = re.compile(r"\$\$(.{1,2000}?)\$\$|\$([^$]{1,2000}?)\$|\\\((.{1,2000}?)\\\)"
                   r"|\\\[(.{1,2000}?)\\\]", re.DOTALL)


def final_answer(text: str) -> str | None:
    """The final answer in `text`, cleaned of `$` delimiters and trailing punctuation, or None."""
    if not isinstance(text, str) or not text:
        return None
    tail = _SPECIAL_TOKENS.sub("", text[-TAIL_CHARS:])  # "A: 26<|eot_id|>"
    found = _marked_answer(tail)
    if found is None:
        found = _bold_answer(tail)
    if found is None:
        return None
    answer = _clean(found)
    if not answer or len(answer) > MAX_ANSWER_CHARS:
        return None
    return answer


def _marked_answer(text: str) -> str | None:
    """The answer at the winning marker (precedence in the module docstring)."""
    boxes = _boxes(text)
    closing = [m.end() for m in _CLOSING.finditer(text)]
    last_line_a = _last_line_a(text)
    if last_line_a is not None:
        closing.append(last_line_a)
    last_closing = max(closing) if closing else -1
    if boxes:
        if last_closing > boxes[-1][0]:
            found = _after_marker(text, last_closing)
            if found and re.search(r"[\d\\]|^\W*[a-zA-Z]{1,2}\W*$", found):
                return found  # a math answer, not "The final answer is boxed above"
        return _boxed_answer(text, boxes)
    phrases = [m.end() for m in _PHRASES.finditer(text)]
    last = max(phrases + [last_closing])
    return _after_marker(text, last) if last >= 0 else None


def _last_line_a(text: str) -> int | None:
    """GSM8K few-shot outputs end on "A: 26"; the marker counts only on the last line."""
    stripped = text.rstrip()
    start = stripped.rfind("\n") + 1
    match = _LAST_LINE_A.match(stripped, start)
    return match.end() if match else None


def _after_marker(text: str, pos: int) -> str | None:
    rest = text[pos : pos + 4 * SPAN_CHARS].lstrip(" \t:*=")
    if rest[:1] in ("\n", "\r"):
        # "Answer:\n42" or "**Final Answer**\n\\[ 42 \\]": the answer is on a following line.
        stripped = rest.lstrip()
        if rest[: len(rest) - len(stripped)].count("\n") > 2:
            return None
        rest = stripped.lstrip(":* ")
    span = _leading_span(rest)
    if span is not None:
        content, after = span
        return _with_hedge(content, after)
    line = _cut_sentence(rest.split("\n", 1)[0])
    if len(re.findall(r"[a-zA-Z]{3,}", line)) >= 2:
        # "Final Answer\nThe total cost is **$25**.": a sentence after a heading
        inner = _BOLD.findall(line) or closing_math(line, require_stop=False)
        if inner:
            return inner[-1] if isinstance(inner, list) else inner
    prose = _PROSE_TAIL.search(line)
    if prose and re.search(r"[\d$\\^=+/]", line[: prose.start()]):
        line = line[: prose.start()]  # "5, since 2+3=5": prose after a math answer (not "step by step")
    return re.sub(r"(?<!\\)\$([^$]*)(?<!\\)\$", r"\1", line)


def _leading_span(text: str) -> tuple[str, str] | None:
    """(content, text after) when `text` opens with a math span."""
    for opening, closing in (("$$", "$$"), ("\\[", "\\]"), ("\\(", "\\)"), ("$", "$")):
        if text.startswith(opening):
            end = text.find(closing, len(opening), len(opening) + SPAN_CHARS)
            while end > 0 and closing == "$" and text[end - 1] == "\\":
                end = text.find(closing, end + 1, len(opening) + SPAN_CHARS)  # "$\$20$": an escaped dollar
            if end < 0:
                return None
            return text[len(opening) : end], text[end + len(closing) :]
    return None


def _with_hedge(answer: str, after: str) -> str:
    """Keep a second value named after a hedge word in the same sentence: "$2$ (or maybe $3$)"."""
    sentence = re.split(r"\.(?:\s|$)|\n", after, maxsplit=1)[0][:500]
    hedge = _HEDGE.search(sentence)
    if hedge is None:
        return answer
    other = _HEDGED_VALUE.search(sentence, hedge.end())
    if other is None:
        return answer
    value = next(g for g in other.groups() if g is not None)
    return f"{answer} \\text{{ or }} {value}"


def boxed_answer(text: str) -> str | None:
    """The last box's content (several joined boxes as one answer), None when there is none."""
    boxes = _boxes(text[-TAIL_CHARS:]) if isinstance(text, str) else []
    return _boxed_answer(text[-TAIL_CHARS:], boxes) if boxes else None


def _boxed_answer(text: str, boxes: list[tuple[int, int, str]]) -> str:
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


def _cut_sentence(line: str) -> str:
    # A sentence ends at ". " / "; " / end of line; a "." followed by a digit is a decimal
    # point, "..." is an ellipsis, and "!" stays (a factorial).
    match = _SENTENCE_END.search(line)
    return line[: match.start()] if match else line


def _bold_answer(text: str) -> str | None:
    lines = [ln for ln in text[-4_000:].splitlines() if ln.strip()]
    if not lines:
        return None
    bolds = _BOLD.findall(lines[-1])
    return bolds[-1] if bolds else None


def closing_math(text: str, require_stop: bool = True) -> str | None:
    """The one math span of the output's last sentence ("Thus the minimum value is $-4$."),
    with a percent sign written right after it; None when that sentence has none or several.
    A concluding sentence without math spans ("So she has 42 apples left.") gives its one
    number. Both need the output to end there (`require_stop`): with a full stop, or, for a
    span, with the span itself; a completion cut off mid-work ("... Let $x = 5$ be the",
    "... then we multiply 7 by") names no answer."""
    if not isinstance(text, str):
        return None
    stopped = text[-20:].rstrip().endswith((".", "!"))
    tail = text[-3 * SPAN_CHARS :].rstrip().rstrip(".!").replace("\\$", "\x01")  # "\$20" is no delimiter
    spans: list[re.Match] = []

    def hold(match: re.Match) -> str:
        spans.append(match)
        return f"\x00{len(spans) - 1}\x00"

    masked = _SPAN.sub(hold, tail)
    boundaries = [m.end() for m in re.finditer(r"[.!?](?:\s|$)|\n\s*\n", masked)]
    last = masked[boundaries[-1] :] if boundaries else masked
    held = [int(i) for i in re.findall(r"\x00(\d+)\x00", last)]
    contents = [next(g for g in spans[i].groups() if g is not None) for i in held]
    # "the value of $x$ is $5$": a span that only names a variable is not the answer
    values = [i for i, c in zip(held, contents) if not _NAME_SPAN.fullmatch(c)]
    chosen = values if values else held
    if not held and (stopped or not require_stop) and "?" not in last and _CONCLUDING.search(last):
        numbers = _NUMBER.findall(last)
        return numbers[0] if len(numbers) == 1 else None
    if len(chosen) != 1 or "?" in last:
        return None
    content = next(g for g in spans[chosen[0]].groups() if g is not None).replace("\x01", "\\$")
    after = last.split(f"\x00{chosen[0]}\x00", 1)[-1].lstrip()
    if require_stop and not stopped and re.search(r"[a-zA-Z]", after.replace("percent", "")):
        return None  # "... Let $x = 5$ be the": cut off mid-sentence, not a closing statement
    if after.startswith(("%", "\\%", "percent")):
        content += "\\%"
    answer = _clean(content)
    return answer or None


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
        if answer.rstrip(" \t\r\n;:?*,").endswith("..."):
            stripped = answer.rstrip(" \t\r\n;:?*,").lstrip(_LEADING)  # an ellipsis is part of the answer
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
