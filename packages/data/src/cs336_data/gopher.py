"""Gopher quality rules (Rae et al. 2021, appendix A), the subset the course asks for."""

from __future__ import annotations

MIN_WORDS, MAX_WORDS = 50, 100_000
MIN_MEAN_WORD, MAX_MEAN_WORD = 3.0, 10.0
MAX_ELLIPSIS_LINES = 0.3
MIN_ALPHA_WORDS = 0.8


def gopher_failures(text: str) -> list[str]:
    """Names of the rules that `text` breaks (empty: it passes). Words are whitespace
    separated, as in the paper's description."""
    words = text.split()
    if not MIN_WORDS <= len(words) <= MAX_WORDS:
        return ["word_count"]  # the other ratios mean nothing on an empty or huge page
    failures = []
    mean = sum(map(len, words)) / len(words)
    if not MIN_MEAN_WORD <= mean <= MAX_MEAN_WORD:
        failures.append("mean_word_length")
    lines = text.splitlines()
    if sum(line.rstrip().endswith(("...", "…")) for line in lines) > MAX_ELLIPSIS_LINES * len(
        lines
    ):
        failures.append("ellipsis_lines")
    if sum(any(c.isalpha() for c in w) for w in words) < MIN_ALPHA_WORDS * len(words):
        failures.append("alphabetic_words")
    return failures


def gopher_quality_filter(text: str) -> bool:
    """True when `text` passes all the rules."""
    return not gopher_failures(text)
