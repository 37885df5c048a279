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


def special_tokens_re(special_tokens: Iterable[str]) -> regex.Pattern | None:
    """A regex matching any special token, longest first, so that `<|a|><|a|>` wins over
    `<|a|>` where both are special; None when there are none."""
    tokens = sorted(set(special_tokens), key=lambda t: (-len(t), t))
    if not tokens:
        return None
    if "" in tokens:
        raise ValueError("special tokens must be non-empty strings")
    return regex.compile("|".join(regex.escape(t) for t in tokens))
