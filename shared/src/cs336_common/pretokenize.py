"""GPT-2 pre-tokenization: special tokens split the text first, then a regex cuts each
piece into pre-tokens, the units that BPE merges never cross."""

from __future__ import annotations

from collections.abc import Iterable

import regex

# GPT-2's pattern: contractions, letter runs, number runs and punctuation runs, each with
# at most one leading space; then whitespace. `\s+(?!\S)` leaves the last space of a run
# to prefix the next word, so " the" stays one pre-token after a run of spaces.
GPT2_PATTERN = r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
PRETOKEN_RE = regex.compile(GPT2_PATTERN)


def normalize_special_tokens(special_tokens: Iterable[str] | None) -> list[str]:
    """The special tokens as a list, duplicates dropped (first occurrence kept); None is
    no special tokens. A bare string (a common slip for `[token]`) is a TypeError and an
    empty or non-string token a ValueError."""
    if special_tokens is None:
        return []
    if isinstance(special_tokens, str):
        raise TypeError(f"special_tokens must be a list of strings, got {special_tokens!r}")
    tokens = list(dict.fromkeys(special_tokens))
    for token in tokens:
        if not isinstance(token, str) or not token:
            raise ValueError(
                f"special tokens must be non-empty strings, got {token!r} in {tokens!r}"
            )
    return tokens


def special_tokens_re(special_tokens: Iterable[str]) -> regex.Pattern | None:
    """A regex matching any of the (normalized, see `normalize_special_tokens`) special
    tokens, longest first, so that `<|a|><|a|>` wins over `<|a|>` where both are special;
    None when there are none."""
    tokens = sorted(special_tokens, key=lambda t: (-len(t), t))
    if not tokens:
        return None
    return regex.compile("|".join(regex.escape(t) for t in tokens))
