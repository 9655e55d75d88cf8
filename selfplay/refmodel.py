"""The reference model's building blocks: a character-level tokenizer and a small Llama.

The tokenizer maps every printable ASCII character to its own token, plus special tokens for the
chat roles and the trace markers, and carries a chat template, so it saves and loads as an ordinary
transformers fast tokenizer that both engines (transformers and vLLM) accept.
"""

from __future__ import annotations

import string
from dataclasses import dataclass
from pathlib import Path

SPECIAL_TOKENS = ["<pad>", "<unk>", "<bos>", "<|end|>", "<|system|>", "<|user|>", "<|assistant|>", "<think>", "</think>"]
PAD, UNK, BOS, EOS = "<pad>", "<unk>", "<bos>", "<|end|>"

# Role markers are single tokens; each message ends with <|end|>, which is also the EOS token, so
# generation stops at the end of the assistant's turn.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|' + message['role'] + '|>' + message['content'] + '<|end|>' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>' }}{% endif %}"
)

CHARACTERS = sorted(set(string.printable) - set("\x0b\x0c\r"))


def build_tokenizer():
    """A character-level PreTrainedTokenizerFast with a chat template."""
    from tokenizers import Tokenizer, decoders, models
    from transformers import PreTrainedTokenizerFast

    vocab = {tok: i for i, tok in enumerate(SPECIAL_TOKENS + CHARACTERS)}
    # BPE with an empty merge list is a pure character tokenizer: each character is its own token.
    core = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token=UNK))
    core.decoder = decoders.Fuse()
    core.add_special_tokens(SPECIAL_TOKENS)
    tok = PreTrainedTokenizerFast(
        tokenizer_object=core, pad_token=PAD, unk_token=UNK, bos_token=BOS, eos_token=EOS,
        padding_side="left", model_max_length=1024,
    )
    tok.chat_template = CHAT_TEMPLATE
    return tok


@dataclass(frozen=True)
class ModelShape:
    """Size of the reference Llama. The defaults give about 0.67 M parameters."""

    hidden_size: int = 128
    """Width of the residual stream."""
    num_layers: int = 4
    """Transformer blocks."""
    num_heads: int = 4
    """Attention heads (head dim = hidden_size / num_heads)."""
    intermediate_size: int = 256
    """Width of the MLP. 256 trains 1.45x faster than 512 at the same accuracy (within the
    run-to-run spread) on the bootstrap's budget, where the model is far from converged."""
    max_positions: int = 512
    """Longest prompt + completion in tokens (characters)."""

    def __post_init__(self):
        if self.hidden_size % self.num_heads:
            raise ValueError(f"hidden_size {self.hidden_size} is not divisible by num_heads {self.num_heads}")


def build_model(tokenizer, shape: ModelShape, seed: int = 0):
    """A freshly initialised LlamaForCausalLM sized by `shape`, for `tokenizer`'s vocabulary."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=shape.hidden_size,
        intermediate_size=shape.intermediate_size,
        num_hidden_layers=shape.num_layers,
        num_attention_heads=shape.num_heads,
        num_key_value_heads=shape.num_heads,
        max_position_embeddings=shape.max_positions,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        tie_word_embeddings=True,
        rope_theta=10000.0,
    )
    torch.manual_seed(seed)
    return LlamaForCausalLM(config)


def save_random_model(path: str | Path, shape: ModelShape = ModelShape(), seed: int = 0) -> Path:
    """An untrained model directory: real weights and tokenizer, random outputs. For tests of the
    code around a model (engines, pipeline), where what it says does not matter."""
    path = Path(path)
    tok = build_tokenizer()
    model = build_model(tok, shape, seed)
    model.save_pretrained(path)
    tok.save_pretrained(path)
    model.generation_config.save_pretrained(path)
    return path
