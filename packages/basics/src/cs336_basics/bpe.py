"""Byte-level BPE training (`train_bpe`), GPT-2 style: count pre-tokens over the file in parallel, then
merge the most frequent adjacent pair again and again, updating counts incrementally.

Vocabulary ids: 0..255 are the bytes, then the special tokens, then one id per merge in
the order made. Ties between equally frequent pairs go to the lexicographically greater
pair of byte strings.
"""

from __future__ import annotations

import heapq
import os
import sys
import warnings
from collections import Counter, defaultdict

from tqdm import tqdm

from cs336_basics.text_chunks import check_input, map_chunks, plan_chunks, read_text
from cs336_common.errors import InputError
from cs336_common.pretokenize import PRETOKEN_RE, normalize_special_tokens, special_tokens_re

# Keys that sort like the reversed byte order: heapq's min-heap then yields the
# lexicographically *greatest* pair among equal counts. Byte x becomes chr(255 - x) and a
# chr(256) terminator makes a prefix sort after its extensions (b"a" < b"ab").
_INVERT = {x: 255 - x for x in range(256)}
_END = chr(256)


def _inverted(token: bytes) -> str:
    return token.decode("latin-1").translate(_INVERT) + _END


def train_bpe(
    input_path: str | os.PathLike,
    vocab_size: int,
    special_tokens: list[str],
    *,
    num_workers: int | None = None,
    progress: bool = False,
    chunk_bytes: int | None = None,
) -> tuple[dict[int, bytes], list[tuple[bytes, bytes]]]:
    """Train a byte-level BPE tokenizer on a UTF-8 text file.

    Returns `(vocab, merges)`: vocab maps id -> bytes (256 bytes, the special tokens, then
    the merged tokens, `vocab_size` in all unless the text runs out of pairs first, which
    warns with `TooFewMergesWarning`; a text with nothing to count is an `InputError`);
    merges are the merged pairs in order. Special tokens split the text (no merge crosses
    one) and are never counted. `num_workers` processes count pre-tokens (default: one
    per CPU) over ranges of about `chunk_bytes` (default: 4-16 MB); memory is bounded by
    the chunk size and the number of distinct pre-tokens.
    """
    special_tokens = normalize_special_tokens(special_tokens)
    minimum = 256 + len(special_tokens)
    if vocab_size < minimum:
        raise InputError(
            f"vocab_size={vocab_size} is too small: the 256 bytes and {len(special_tokens)} "
            f"special token(s) need at least {minimum}"
        )
    if vocab_size > sys.maxunicode + 1:  # words hold token ids as characters
        raise InputError(f"vocab_size={vocab_size} is above the limit of {sys.maxunicode + 1}")
    empty = check_input(input_path).stat().st_size == 0
    counts = (
        {}
        if empty
        else _count_pretokens(input_path, special_tokens, num_workers, progress, chunk_bytes)
    )
    if not counts:
        raise InputError(
            f"{input_path}: no text to train on (the file is empty or holds only special tokens)"
        )
    vocab = {i: bytes([i]) for i in range(256)}
    for token in special_tokens:
        vocab[len(vocab)] = token.encode("utf-8")
    merges = _merge(counts, vocab, vocab_size - len(vocab), progress)
    if len(vocab) < vocab_size:
        warnings.warn(
            f"{input_path} allows only {len(merges)} merges, so the vocabulary has "
            f"{len(vocab)} tokens, not vocab_size={vocab_size}: train on more text",
            TooFewMergesWarning,
            stacklevel=2,
        )
    return vocab, merges


class TooFewMergesWarning(UserWarning):
    """The training text ran out of pairs to merge before reaching ``vocab_size``."""


def _count_pretokens(
    input_path, special_tokens, num_workers, progress, chunk_bytes
) -> Counter[str]:
    plan = plan_chunks(input_path, special_tokens, num_workers, chunk_bytes)
    total: Counter[str] = Counter()
    for counts in map_chunks(
        _count_chunk,
        plan.path,
        plan.ranges,
        num_workers=plan.workers,
        progress=progress,
        desc="pre-tokenizing",
        state=special_tokens,
        make_state=special_tokens_re,
    ):
        total.update(counts)
    return total


def _count_chunk(special_re, task: tuple[str, int, int]) -> Counter[str]:
    text = read_text(*task)
    counts: Counter[str] = Counter()
    for doc in special_re.split(text) if special_re else (text,):
        counts.update(PRETOKEN_RE.findall(doc))
    return counts


def _merge(
    counts: Counter[str], vocab: dict[int, bytes], num_merges: int, progress: bool
) -> list[tuple[bytes, bytes]]:
    """Make up to `num_merges` merges, adding the new tokens to `vocab` in place.

    Each distinct pre-token is a word with a frequency, held as a string whose characters
    are token ids (chr(id)): a pair is then a 2-character string and merging it in a word
    is `str.replace`, which scans left to right without overlaps exactly as BPE does, in C.
    `pair_counts` is the frequency of each adjacent pair over all words and `where` the
    words it occurs in, so a merge only rewrites the words that hold the pair. The heap
    holds (-count, keys, pair) entries, possibly stale: a popped entry is used only if its
    count is still current, otherwise it is requeued with the current one (counts only
    fall, except for pairs holding the new token, which are pushed after each merge).
    """
    words = [w.encode("utf-8").decode("latin-1") for w in counts]  # chr(byte) = its id
    freqs = list(counts.values())
    pair_counts: defaultdict[str, int] = defaultdict(int)
    where: defaultdict[str, set[int]] = defaultdict(set)
    for i, (word, freq) in enumerate(zip(words, freqs, strict=True)):
        for pair in map(str.__add__, word, word[1:]):
            pair_counts[pair] += freq
            where[pair].add(i)
    keys = [_inverted(vocab[i]) for i in range(len(vocab))]

    def entry(pair: str, count: int) -> tuple:
        return (-count, keys[ord(pair[0])], keys[ord(pair[1])], pair)

    heap = [entry(pair, count) for pair, count in pair_counts.items()]
    heapq.heapify(heap)
    merges: list[tuple[bytes, bytes]] = []
    bar = tqdm(total=num_merges, desc="merging", unit="merge", disable=not progress)
    while len(merges) < num_merges and heap:
        neg, _, _, pair = heapq.heappop(heap)
        count = pair_counts.get(pair, 0)
        if count != -neg:  # stale (entries are only pushed with counts > 0): requeue
            if count > 0:
                heapq.heappush(heap, entry(pair, count))
            continue
        a, b = ord(pair[0]), ord(pair[1])
        new = len(vocab)
        vocab[new] = vocab[a] + vocab[b]
        keys.append(keys[a][:-1] + keys[b])
        merges.append((vocab[a], vocab[b]))
        for fresh in _apply_merge(words, freqs, pair_counts, where, pair, chr(new)):
            if pair_counts[fresh] > 0:
                heapq.heappush(heap, entry(fresh, pair_counts[fresh]))
        bar.update()
    bar.close()
    return merges


def _apply_merge(words, freqs, pair_counts, where, pair: str, new: str) -> set[str]:
    """Replace `pair` by `new` in every word that holds it, updating the counts of only the
    pairs next to each merge site; return the pairs holding `new`, the only ones that grew."""
    a, b = pair
    fresh = set()
    for i in where.pop(pair):
        word = words[i]
        if pair not in word:  # `where` is never pruned: the pair has left this word
            continue
        words[i] = merged = word.replace(pair, new)
        freq = freqs[i]
        last = len(merged) - 1
        k = merged.find(new)
        while k >= 0:
            # (left, a) became (left, new); a left `new` was handled as the previous right
            if k > 0 and (left := merged[k - 1]) != new:
                pair_counts[left + a] -= freq
                grown = left + new
                pair_counts[grown] += freq
                where[grown].add(i)
                fresh.add(grown)
            if k < last:  # (b, right) became (new, right); a right `new` was an `a`
                right = merged[k + 1]
                pair_counts[b + (a if right == new else right)] -= freq
                grown = new + right
                pair_counts[grown] += freq
                where[grown].add(i)
                fresh.add(grown)
            k = merged.find(new, k + 1)
    del pair_counts[pair]
    return fresh
