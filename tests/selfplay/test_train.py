"""The SFT loop: learns what it is shown, masks the prompt, is deterministic, refuses bad input."""

import pytest
import torch

from selfplay.refmodel import ModelShape, build_model, build_tokenizer
from selfplay.train import Example, NothingToLearn, TrainConfig, full_batches, learning_rate, tokenize, train_sft

TINY = ModelShape(hidden_size=32, num_layers=2, num_heads=2, intermediate_size=64, max_positions=128)


def _examples():
    # A fixed mapping the model can only learn from the assistant side: the letter after each one.
    return [Example([{"role": "user", "content": f"next {c}"}], chr(ord(c) + 1)) for c in "abcdefgh"]


def _loss_on(model, tok, examples):
    data, _ = tokenize(tok, examples, 128)
    total = 0.0
    with torch.no_grad():
        for ids, prompt_len in data:
            logits = model(input_ids=torch.tensor([ids])).logits[0]
            target = torch.tensor(ids[prompt_len:])
            total += torch.nn.functional.cross_entropy(logits[prompt_len - 1 : -1], target).item()
    return total / len(data)


def test_training_lowers_the_loss_on_assistant_tokens():
    tok = build_tokenizer()
    model = build_model(tok, TINY, seed=0)
    before = _loss_on(model, tok, _examples())
    report = train_sft(model, tok, _examples(), TrainConfig(steps=60, batch_size=8, lr=1e-2, warmup_steps=5, log_every=20, threads=1), log=None)
    assert _loss_on(model, tok, _examples()) < before / 4
    assert [s for s, _ in report.loss_curve] == [20, 40, 60]
    assert report.loss_curve[-1][1] < report.loss_curve[0][1]
    assert report.target_tokens == 60 * 8 * 2  # one letter + end-of-turn per example, nothing else


def test_prompt_tokens_carry_no_loss():
    tok = build_tokenizer()
    data, dropped = tokenize(tok, [Example([{"role": "user", "content": "a long prompt"}], "x")], 128)
    ids, prompt_len = data[0]
    assert dropped == 0 and len(ids) - prompt_len == 2
    assert tok.decode(ids[prompt_len:]) == "x<|end|>"


def test_same_seed_same_weights():
    def trained():
        tok = build_tokenizer()
        model = build_model(tok, TINY, seed=1)
        train_sft(model, tok, _examples(), TrainConfig(steps=5, batch_size=3, threads=1, seed=4), log=None)
        return torch.cat([p.detach().flatten() for p in model.parameters()])

    assert torch.equal(trained(), trained())


def test_overlong_examples_are_dropped_and_counted():
    tok = build_tokenizer()
    examples = _examples() + [Example([{"role": "user", "content": "z" * 200}], "y")]
    model = build_model(tok, TINY)
    report = train_sft(model, tok, examples, TrainConfig(steps=1, batch_size=4, max_length=64, threads=1), log=None)
    assert report.dropped == 1 and report.examples == 8
    with pytest.raises(NothingToLearn, match="all 1 examples are longer than max_length=64 tokens"):
        train_sft(model, tok, examples[-1:], TrainConfig(steps=1, max_length=64), log=None)
    with pytest.raises(NothingToLearn, match="no examples"):
        train_sft(model, tok, [], TrainConfig(steps=1), log=None)


def test_schedule_warms_up_then_decays_to_the_floor():
    config = TrainConfig(steps=100, lr=1.0, warmup_steps=10, min_lr_ratio=0.1)
    rates = [learning_rate(s, config) for s in range(100)]
    assert rates[0] == pytest.approx(0.1) and rates[9] == pytest.approx(1.0)
    assert rates[-1] == pytest.approx(0.1) and all(a >= b for a, b in zip(rates[9:], rates[10:]))
    linear = TrainConfig(steps=100, lr=1.0, warmup_steps=0, schedule="linear", min_lr_ratio=0.0)
    assert learning_rate(50, linear) == pytest.approx(0.5, abs=0.02)


@pytest.mark.parametrize("field, value", [("steps", 0), ("lr", 0.0), ("schedule", "step"), ("min_lr_ratio", 2.0)])
def test_bad_settings_are_refused(field, value):
    with pytest.raises(ValueError, match=field):
        TrainConfig(**{field: value})


def test_full_batches_are_the_loops_batches_without_the_short_one():
    data = [([1] * (3 + i % 7), 1) for i in range(21)]  # 21 examples, batches of 4: one short batch an epoch
    batches = full_batches(data, 4, steps=12, seed=5)
    assert len(batches) == 12 and all(len(b) == 4 for b in batches)
    first_epoch = [i for b in batches[:5] for i in b]
    assert len(set(first_epoch)) == 20  # an epoch's full batches hold 20 distinct examples
    assert batches == full_batches(data, 4, steps=12, seed=5)
    with pytest.raises(ValueError, match="cannot be filled"):
        full_batches(data, 22, steps=1, seed=0)
