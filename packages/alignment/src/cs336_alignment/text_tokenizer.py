"""One small view over the two tokenizer kinds the package drives: a Hugging Face
tokenizer and `cs336_common.Tokenizer`. Everything else in the package talks to this."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

EOS_CANDIDATES = ("<|endoftext|>", "<|end_of_text|>", "</s>", "<|im_end|>")


@dataclass
class TextTokenizer:
    """``encode`` (no special tokens added), ``decode``, ``eos_id``, ``pad_id`` and
    ``bos_ids`` (what a document starts with: [] for GPT-2/Qwen, [bos] for Llama)."""

    raw: Any
    eos_id: int | None
    pad_id: int
    bos_ids: list[int]
    is_hf: bool

    def encode(self, text: str) -> list[int]:
        if self.is_hf:
            return list(self.raw.encode(text, add_special_tokens=False))
        return list(self.raw.encode(text))

    def decode(self, ids) -> str:
        ids = [int(i) for i in ids]
        if self.is_hf:
            return self.raw.decode(ids, skip_special_tokens=False)
        return self.raw.decode(ids)


def as_text_tokenizer(tokenizer: Any) -> TextTokenizer:
    """Wrap ``tokenizer`` (idempotent). HF tokenizers are recognised by ``eos_token_id``."""
    if isinstance(tokenizer, TextTokenizer):
        return tokenizer
    if hasattr(tokenizer, "eos_token_id") and hasattr(tokenizer, "convert_tokens_to_ids"):
        eos = tokenizer.eos_token_id
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos
        return TextTokenizer(tokenizer, eos, 0 if pad is None else pad, _bos_ids(tokenizer), True)
    eos = None
    specials = getattr(tokenizer, "special_tokens", []) or []
    for candidate in EOS_CANDIDATES:
        if candidate in specials:
            eos = tokenizer.token_id(candidate)
            break
    return TextTokenizer(tokenizer, eos, 0 if eos is None else eos, [], False)


def _bos_ids(tokenizer: Any) -> list[int]:
    """What the tokenizer puts before a text by default (Llama's BOS; none for GPT-2 or
    Qwen), found by encoding with and without special tokens."""
    plain = tokenizer("a", add_special_tokens=False)["input_ids"]
    full = tokenizer("a")["input_ids"]
    n = len(full) - len(plain)
    if n > 0 and full[n : n + len(plain)] == plain:
        return list(full[:n])
    return []
