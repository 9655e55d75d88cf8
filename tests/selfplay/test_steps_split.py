"""The step split rule: the critic's numbering for traces in the solver's format, numbered lines,
paragraphs or lines for free-form solutions; spans are exact prefixes of the text."""

from __future__ import annotations

from selfplay import prompts
from selfplay.steps_split import split_steps, step_spans


def test_a_solver_trace_splits_as_the_critic_numbers_it_with_the_answer_last():
    trace = "<think>\n7+8+0=15\n\n5+6+1=12\n4+0+1=5\n</think>\nAnswer: 525"
    steps = split_steps(trace)
    assert steps == ["7+8+0=15", "5+6+1=12", "4+0+1=5", "Answer: 525"]
    numbered = prompts.critic_messages("457+68=?", trace)[0]["content"].splitlines()[1:-1]
    assert [line.split(". ", 1)[1] for line in numbered] == steps[:-1]


def test_free_form_solutions_split_at_numbered_lines_else_paragraphs_else_lines():
    assert split_steps("We add.\n1. Add 2 and 3.\n2) Get 5.\nSo the answer is 5") == [
        "We add.", "1. Add 2 and 3.", "2) Get 5.\nSo the answer is 5"]
    assert split_steps("Step 1: x = 2\nStep 2: y = 3") == ["Step 1: x = 2", "Step 2: y = 3"]
    assert split_steps("First, the setup\nin two lines.\n\nThen the answer.\n \n\nDone") == [
        "First, the setup\nin two lines.", "Then the answer.", "Done"]
    assert split_steps("a = 1\nb = 2\n\n") == ["a = 1", "b = 2"]
    assert split_steps("") == [] and split_steps("   \n") == []


def test_spans_are_offsets_into_the_original_text():
    trace = "<think>\n  1+1+0=2 \n</think>\n Answer: 2\n"
    spans = step_spans(trace)
    assert [trace[a:b] for a, b in spans] == ["1+1+0=2", "Answer: 2"]
    assert trace[: spans[1][0]].endswith("</think>\n ")
