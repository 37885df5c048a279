"""Byte-level BPE training (`train_bpe`), GPT-2 style: count pre-tokens over the file in parallel, then
merge the most frequent adjacent pair again and again, updating counts incrementally.

Vocabulary ids: 0..255 are the bytes, then the special tokens, then one id per merge in
the order made. Ties between equally frequent pairs go to the lexicographically greater
pair of byte strings.
"""

from __future__ import annotations

import heapq
import itertools
import os
from collections import Counter, defaultdict

from tqdm import tqdm

from cs336_basics.text_chunks import (
    check_input,
    chunk_ranges,
    chunk_size,
    default_workers,
    map_chunks,
    read_text,
)
from cs336_common.pretokenize import PRETOKEN_RE, special_tokens_re

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
) -> tuple[dict[int, bytes], list[tuple[bytes, bytes]]]:
    """Train a byte-level BPE tokenizer on a UTF-8 text file.

    Returns `(vocab, merges)`: vocab maps id -> bytes (256 bytes, the special tokens, then
    the merged tokens, `vocab_size` in all unless the text runs out of pairs first);
    merges are the merged pairs in order. Special tokens split the text (no merge crosses
    one) and are never counted. `num_workers` processes count pre-tokens (default: one
    per CPU); memory is bounded by the chunk size and the number of distinct pre-tokens.
    """
    path = check_input(input_path)
    if isinstance(special_tokens, str):
        raise TypeError(f"special_tokens must be a list of strings, got {special_tokens!r}")
    special_tokens = list(dict.fromkeys(special_tokens))
    if any(not isinstance(t, str) or not t for t in special_tokens):
        raise ValueError(f"special tokens must be non-empty strings, got {special_tokens!r}")
    minimum = 256 + len(special_tokens)
    if vocab_size < minimum:
        raise ValueError(
            f"vocab_size={vocab_size} is too small: the 256 bytes and {len(special_tokens)} "
            f"special token(s) need at least {minimum}"
        )
    counts = _count_pretokens(path, special_tokens, num_workers, progress)
    vocab = {i: bytes([i]) for i in range(256)}
    for token in special_tokens:
        vocab[len(vocab)] = token.encode("utf-8")
    merges = _merge(counts, vocab, vocab_size - len(vocab), progress)
    return vocab, merges


def _count_pretokens(path, special_tokens, num_workers, progress) -> Counter[str]:
    workers = num_workers or default_workers()
    ranges = chunk_ranges(path, special_tokens, chunk_size(path.stat().st_size, workers))
    total: Counter[str] = Counter()
    for counts in map_chunks(
        _count_chunk,
        path,
        ranges,
        num_workers=workers,
        progress=progress,
        desc="pre-tokenizing",
        initializer=_set_special_tokens,
        initargs=(special_tokens,),
    ):
        total.update(counts)
    return total


_special_re = None  # set in each worker by _set_special_tokens


def _set_special_tokens(special_tokens: list[str]) -> None:
    global _special_re
    _special_re = special_tokens_re(special_tokens)


def _count_chunk(task: tuple[str, int, int]) -> Counter[str]:
    text = read_text(*task)
    counts: Counter[str] = Counter()
    for doc in _special_re.split(text) if _special_re else (text,):
        counts.update(PRETOKEN_RE.findall(doc))
    return counts


def _merge(
    counts: Counter[str], vocab: dict[int, bytes], num_merges: int, progress: bool
) -> list[tuple[bytes, bytes]]:
    """Make up to `num_merges` merges, adding the new tokens to `vocab` in place.

    Each distinct pre-token is a word: a list of ids with a frequency. `pair_counts` is
    the frequency of each adjacent pair over all words and `where` the words it occurs in,
    so a merge only rewrites the words that hold the pair. The heap holds (-count, keys)
    entries, possibly stale: a popped entry is used only if its count is still current,
    otherwise it is pushed back with the current one (counts only fall, except for pairs
    holding the new token, which are pushed fresh after each merge).
    """
    words = [list(w.encode("utf-8")) for w in counts]
    freqs = list(counts.values())
    pair_counts: defaultdict[tuple[int, int], int] = defaultdict(int)
    where: defaultdict[tuple[int, int], set[int]] = defaultdict(set)
    for i, (word, freq) in enumerate(zip(words, freqs, strict=True)):
        for pair in itertools.pairwise(word):
            pair_counts[pair] += freq
            where[pair].add(i)
    keys = [_inverted(vocab[i]) for i in range(len(vocab))]
    heap = [(-c, keys[a], keys[b], a, b) for (a, b), c in pair_counts.items()]
    heapq.heapify(heap)

    merges: list[tuple[bytes, bytes]] = []
    bar = tqdm(total=num_merges, desc="merging", unit="merge", disable=not progress)
    while len(merges) < num_merges and heap:
        neg, _, _, a, b = heapq.heappop(heap)
        count = pair_counts.get((a, b), 0)
        if count != -neg:  # stale (entries are only pushed with counts > 0): requeue
            if count > 0:
                heapq.heappush(heap, (-count, keys[a], keys[b], a, b))
            continue
        new = len(vocab)
        vocab[new] = vocab[a] + vocab[b]
        keys.append(keys[a][:-1] + keys[b])
        merges.append((vocab[a], vocab[b]))
        fresh = _apply_merge(words, freqs, pair_counts, where, a, b, new)
        for pair in fresh:
            if pair_counts[pair] > 0:
                heapq.heappush(heap, (-pair_counts[pair], keys[pair[0]], keys[pair[1]], *pair))
        bar.update()
    bar.close()
    return merges


def _apply_merge(words, freqs, pair_counts, where, a: int, b: int, new: int) -> set:
    """Replace (a, b) by `new` in every word that holds it, updating the counts of only the
    neighbouring pairs; return the pairs holding `new`, the only ones whose count grew."""
    fresh = set()
    for i in where.pop((a, b)):
        word, freq = words[i], freqs[i]
        n = len(word)
        out: list[int] = []
        j = 0
        while j < n:
            if word[j] == a and j + 1 < n and word[j + 1] == b:
                if out:  # (left, a) becomes (left, new); left may itself be a fresh `new`
                    left = out[-1]
                    pair_counts[left, a] -= freq
                    pair_counts[left, new] += freq
                    where[left, new].add(i)
                    fresh.add((left, new))
                if j + 2 < n:  # (b, right) becomes (new, right)
                    right = word[j + 2]
                    pair_counts[b, right] -= freq
                    pair_counts[new, right] += freq
                    where[new, right].add(i)
                    fresh.add((new, right))
                out.append(new)
                j += 2
            else:
                out.append(word[j])
                j += 1
        if len(out) < n:  # else `where` was stale (it is never pruned): the pair left
            words[i] = out
    del pair_counts[a, b]
    return fresh
