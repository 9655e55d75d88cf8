"""The prompts and formats every model sees: the critic's training target, its parser, the
instruct prompts for chat models, and the critic score from the verdict token's log-probabilities."""

from __future__ import annotations

from selfplay import prompts
from selfplay.prompts import format_critic, parse_critic


def test_a_wrong_trace_without_a_known_step_trains_the_verdict_alone():
    assert format_critic(False, None) == "Verdict: wrong"
    assert format_critic(False, 2) == "Verdict: wrong at step 3"
    assert format_critic(True) == "Verdict: correct"
    call = parse_critic(format_critic(False, None))
    assert call.correct is False and call.first_wrong_step is None
