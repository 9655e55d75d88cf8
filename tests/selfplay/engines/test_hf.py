"""What the transformers engine does beyond the shared contract (tests/selfplay/engines/test_base.py)."""

from __future__ import annotations

import json
import shutil

import pytest

from selfplay.engines.base import GenerationRequest
from selfplay.engines.load import load_engine

CHAT = [{"role": "user", "content": "Name a prime."}]


def texts(result) -> list[str]:
    return [c.text for c in result.completions]


def test_batch_size_does_not_change_seeded_completions(hf_engine, model_dir, make_config):
    requests = [GenerationRequest(prompt=p, n=3, temperature=0.9, top_p=0.95, max_tokens=24, seed=s)
                for s, p in enumerate(["a", "longer prompt here", "mid prompt"])]
    one_at_a_time = load_engine(make_config(model_dir, "hf", batch_size=1))
    try:
        assert [texts(r) for r in one_at_a_time.generate(requests)] == [texts(r) for r in hf_engine.generate(requests)]
    finally:
        one_at_a_time.close()


def test_greedy_and_sampled_rows_share_a_batch_without_affecting_each_other(hf_engine):
    greedy = GenerationRequest(prompt=CHAT, temperature=0.0, max_tokens=24)
    (alone,) = hf_engine.generate([greedy])
    mixed = hf_engine.generate([GenerationRequest(prompt=CHAT, n=4, temperature=1.5, max_tokens=30), greedy])
    assert texts(mixed[1]) == texts(alone)


def test_unseeded_requests_follow_the_engine_seed(model_dir, make_config):
    request = GenerationRequest(prompt=CHAT, n=2, temperature=1.0, max_tokens=16)
    runs = []
    for _ in range(2):
        engine = load_engine(make_config(model_dir, "hf", seed=0))
        runs.append([texts(engine.generate([request])[0]) for _ in range(2)])
        engine.close()
    assert runs[0] == runs[1]  # the same engine seed replays the same stream
    assert runs[0][0] != runs[0][1]  # and the stream moves on between calls


def test_the_eos_token_ends_a_completion_and_is_counted_but_not_shown(hf_engine, model_dir, make_config, tmp_path):
    # Make the token the model greedily writes first an extra EOS, so the model surely emits one.
    (greedy,) = hf_engine.generate([GenerationRequest(prompt=CHAT, max_tokens=4)])
    first_token = hf_engine.tokenizer.encode(greedy.completions[0].text, add_special_tokens=False)[0]
    eager = shutil.copytree(model_dir, tmp_path / "eager-eos")
    settings = json.loads((eager / "generation_config.json").read_text())
    settings["eos_token_id"] = [hf_engine.tokenizer.eos_token_id, first_token]
    (eager / "generation_config.json").write_text(json.dumps(settings))
    engine = load_engine(make_config(eager, "hf"))
    try:
        (result,) = engine.generate([GenerationRequest(prompt=CHAT, n=2, max_tokens=16)])
        assert [(c.text, c.completion_tokens, c.finish_reason) for c in result.completions] == [("", 1, "stop")] * 2
    finally:
        engine.close()


def test_a_closed_engine_says_so(model_dir, make_config):
    engine = load_engine(make_config(model_dir, "hf"))
    engine.close()
    with pytest.raises(RuntimeError, match="is closed"):
        engine.generate([GenerationRequest(prompt="hi")])
