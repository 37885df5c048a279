"""Shared fixtures: a GPT-2 tokenizer (HF and ours) from the repo's vocabulary files and
tiny randomly initialised models (a Qwen2 from a config, a `TransformerLM`). Nothing is
downloaded."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

FIXTURES = Path(__file__).resolve().parents[3] / "shared" / "tests" / "fixtures"
VOCAB, MERGES = FIXTURES / "gpt2_vocab.json", FIXTURES / "gpt2_merges.txt"
HERE = Path(__file__).resolve().parent / "fixtures"


def gpt2_hf_tokenizer():
    import json

    from transformers import GPT2TokenizerFast

    vocab = json.loads(VOCAB.read_text(encoding="utf-8"))
    merges = [tuple(line.split(" ")) for line in MERGES.read_text(encoding="utf-8").splitlines()]
    return GPT2TokenizerFast(vocab=vocab, merges=merges, pad_token="<|endoftext|>")


@pytest.fixture(scope="session")
def hf_tokenizer():
    return gpt2_hf_tokenizer()


@pytest.fixture(scope="session")
def our_tokenizer():
    from cs336_common import Tokenizer

    return Tokenizer.from_files(VOCAB, MERGES, ["<|endoftext|>"])


def tiny_qwen2(seed: int = 0, vocab_size: int = 50257):
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(seed)
    config = Qwen2Config(
        vocab_size=vocab_size,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        tie_word_embeddings=False,
    )
    return Qwen2ForCausalLM(config).eval()


def tiny_lm(seed: int = 0, vocab_size: int = 50257, context_length: int = 256):
    from cs336_common import TransformerLM

    torch.manual_seed(seed)
    return TransformerLM(vocab_size, context_length, 32, 2, 4, 64).eval()


@pytest.fixture(scope="session")
def qwen():
    return tiny_qwen2()


@pytest.fixture(scope="session")
def make_qwen2():
    """``tiny_qwen2`` itself, for tests that need several differently seeded models (test
    modules cannot import conftest: every package's tests folder is named ``tests``)."""
    return tiny_qwen2


@pytest.fixture(scope="session")
def make_lm():
    """``tiny_lm`` itself (a TransformerLM factory taking seed and vocab_size)."""
    return tiny_lm


@pytest.fixture(scope="session")
def our_lm():
    return tiny_lm()
