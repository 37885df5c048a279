"""Fuzzy document deduplication: MinHash signatures, LSH banding, true Jaccard, union-find.

Speed comes from hashing each distinct word once (memoized, stable across processes),
combining word hashes into n-gram hashes with numpy, and computing the signatures of many
documents at once: one (num_hashes x all n-grams) multiply-shift pass and a min per
document segment. Two documents are duplicates when their normalized word n-gram sets
have Jaccard similarity >= the threshold; clusters are the connected components of such
pairs, and the first document of each cluster (in input order) is kept."""

from __future__ import annotations

import os
import string
import unicodedata
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import regex

from cs336_common.io import atomic_path

_ASCII_PUNCT = str.maketrans("", "", string.punctuation)
# Punctuation, and the combining marks (accents) that NFD splits off letters, in one pass.
_PUNCT_AND_MARKS = regex.compile(r"[^\w\s]|_|\p{Mn}")
_MASK64 = (1 << 64) - 1
# Odd 64-bit multipliers (from the golden ratio and splitmix64) to combine word hashes.
_GOLDEN = 0x9E3779B97F4A7C15
_MIX = 0xBF58476D1CE4E5B9


def normalize(text: str) -> str:
    """Lowercase, NFD with accents removed, punctuation removed, whitespace collapsed."""
    text = text.lower()
    if text.isascii():  # the common case, without a regex: ~3x faster
        return " ".join(text.translate(_ASCII_PUNCT).split())
    return " ".join(_PUNCT_AND_MARKS.sub("", unicodedata.normalize("NFD", text)).split())


_P = 0x100000001B3  # an odd multiplier (FNV's prime): invertible mod 2^64
_P_INV = pow(_P, -1, 1 << 64)
_BATCH_BYTES = 1 << 22  # normalized text hashed per vectorized step (memory ~40 bytes/byte)


def _powers(base: int, n: int) -> np.ndarray:
    out = np.full(n, base, dtype=np.uint64)
    out[0] = 1
    return np.cumprod(out, dtype=np.uint64)  # wraps mod 2^64, as intended


def _word_hashes(data: bytes) -> np.ndarray:
    """A 64-bit hash of every space-separated word of `data`, all at once: the polynomial
    sum (b_k + 1) P^k over the word's bytes, from prefix sums over the whole buffer (a
    word's sum times P^-start does not depend on where the word is), then mixed."""
    b = np.frombuffer(data, dtype=np.uint8)
    spaces = np.flatnonzero(b == 32)
    starts = np.concatenate([[0], spaces + 1])
    ends = np.concatenate([spaces, [len(b)]])
    prefix = np.zeros(len(b) + 1, dtype=np.uint64)
    np.cumsum((b + np.uint64(1)) * _powers(_P, len(b)), out=prefix[1:])
    h = (prefix[ends] - prefix[starts]) * _powers(_P_INV, len(b) + 1)[starts]
    h ^= h >> np.uint64(33)
    h *= np.uint64(_MIX)
    h ^= h >> np.uint64(29)
    return h


def _combine(w: np.ndarray, n: int, m: int) -> np.ndarray:
    """Hashes of the m windows of n consecutive word hashes starting at 0..m-1."""
    h = np.zeros(m, dtype=np.uint64)
    for j in range(n):  # a position-dependent multiplier: "a b" != "b a"
        h ^= w[j : j + m]
        h *= np.uint64((_GOLDEN * (2 * j + 1)) & _MASK64)
    h ^= h >> np.uint64(31)
    h *= np.uint64(_MIX)
    h ^= h >> np.uint64(29)
    return h


def ngram_hash_lists(texts: Sequence[str], ngrams: int) -> list[np.ndarray]:
    """For each text, the 64-bit hashes of the word n-grams of normalize(text), repeats
    included, computed for many texts per vectorized step. A text shorter than n words
    is one n-gram (itself), so short documents still compare."""
    norm = [normalize(t) for t in texts]
    out: list[np.ndarray] = []
    i = 0
    while i < len(norm):  # texts in groups of about _BATCH_BYTES
        j, size = i, 0
        while j < len(norm) and (j == i or size + len(norm[j]) <= _BATCH_BYTES):
            size += len(norm[j]) + 1
            j += 1
        out += _ngram_batch(norm[i:j], ngrams)
        i = j
    return out


def _ngram_batch(norm: list[str], ngrams: int) -> list[np.ndarray]:
    lens = [s.count(" ") + 1 if s else 0 for s in norm]
    joined = " ".join(s for s in norm if s).encode("utf-8", "surrogatepass")
    w = _word_hashes(joined) if joined else np.zeros(0, dtype=np.uint64)
    full = _combine(w, ngrams, max(len(w) - ngrams + 1, 0))
    out, start = [], 0
    for length in lens:
        if length >= ngrams:
            out.append(full[start : start + length - ngrams + 1])
        else:
            out.append(_combine(w[start : start + length], length, min(length, 1)))
        start += length
    return out


def ngram_hashes(text: str, ngrams: int) -> np.ndarray:
    """Sorted distinct n-gram hashes of one text: its set of n-grams."""
    return np.unique(ngram_hash_lists([text], ngrams)[0])


class MinHasher:
    """`num_hashes` multiply-shift hash functions h_i(x) = high 32 bits of (a_i x + b_i)
    mod 2^64 (a_i odd), drawn from `seed`; a signature is each function's minimum."""

    def __init__(self, num_hashes: int, ngrams: int, seed: int = 0):
        if num_hashes < 1 or ngrams < 1:
            raise ValueError(f"num_hashes and ngrams must be >= 1, got {num_hashes}, {ngrams}")
        rng = np.random.default_rng(seed)
        self.a = rng.integers(0, 2**63, num_hashes, dtype=np.uint64) * np.uint64(2) + np.uint64(1)
        self.b = rng.integers(0, 2**63, num_hashes, dtype=np.uint64)
        self.num_hashes, self.ngrams = num_hashes, ngrams

    def signatures(self, shingles: Sequence[np.ndarray], batch: int = 1 << 13) -> np.ndarray:
        """(len(shingles), num_hashes) uint32; an empty document gets all 0xFFFFFFFF."""
        sig = np.full((len(shingles), self.num_hashes), 0xFFFFFFFF, dtype=np.uint32)
        i = 0
        while i < len(shingles):  # documents in groups of about `batch` n-grams
            j, size = i, 0
            while j < len(shingles) and (j == i or size + len(shingles[j]) <= batch):
                size += len(shingles[j])
                j += 1
            self._fill(sig, shingles, i, j)
            i = j
        return sig

    def _fill(self, sig: np.ndarray, shingles: Sequence[np.ndarray], i: int, j: int) -> None:
        lengths = np.array([len(s) for s in shingles[i:j]])
        docs = np.flatnonzero(lengths) + i
        if not len(docs):
            return
        x = np.concatenate([shingles[d] for d in docs])
        hv = np.multiply(self.a[:, None], x[None, :])  # wraps mod 2^64, as intended
        hv += self.b[:, None]
        starts = np.concatenate([[0], np.cumsum(lengths[docs - i])[:-1]])
        # The minimum of the 64-bit values has the minimum high half: shift after the min.
        low = np.minimum.reduceat(hv, starts, axis=1)
        sig[docs] = (low >> np.uint64(32)).astype(np.uint32).T


def lsh_candidates(signatures: np.ndarray, num_bands: int) -> set[tuple[int, int]]:
    """Pairs (i < j) of documents whose signatures agree on all rows of at least one band."""
    k = signatures.shape[1]
    if k % num_bands:
        raise ValueError(f"num_hashes ({k}) must be divisible by num_bands ({num_bands})")
    rows = k // num_bands
    pairs: set[tuple[int, int]] = set()
    for band in range(num_bands):
        keys = np.ascontiguousarray(signatures[:, band * rows : (band + 1) * rows])
        keys = keys.view(np.dtype((np.void, keys.dtype.itemsize * rows))).ravel()
        order = np.argsort(keys, kind="stable")
        equal_next = np.flatnonzero(keys[order][1:] == keys[order][:-1])
        # Runs of consecutive positions in `equal_next` are the buckets with 2+ documents.
        for run in np.split(equal_next, np.flatnonzero(np.diff(equal_next) != 1) + 1):
            if len(run):
                group = sorted(order[run[0] : run[-1] + 2].tolist())
                pairs.update((a, b) for x, a in enumerate(group) for b in group[x + 1 :])
    return pairs


def jaccard(a: np.ndarray, b: np.ndarray) -> float:
    """Jaccard similarity of two sorted distinct hash arrays (sets, as np.unique gives)."""
    if not len(a) and not len(b):
        return 1.0
    inter = len(np.intersect1d(a, b, assume_unique=True))
    return inter / (len(a) + len(b) - inter)


class UnionFind:
    def __init__(self, n: int):
        self.parent = list(range(n))

    def find(self, x: int) -> int:
        while self.parent[x] != x:
            self.parent[x] = self.parent[self.parent[x]]
            x = self.parent[x]
        return x

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:  # the smaller index is the root: it is the document that is kept
            self.parent[max(ra, rb)] = min(ra, rb)


def duplicate_clusters(
    shingles: Sequence[np.ndarray],
    num_hashes: int,
    num_bands: int,
    ngrams: int,
    jaccard_threshold: float,
    seed: int = 0,
) -> list[int]:
    """For each document, the index of the document kept for its cluster (itself if kept)."""
    sig = MinHasher(num_hashes, ngrams, seed).signatures(shingles)
    uf = UnionFind(len(shingles))
    sets: dict[int, np.ndarray] = {}  # n-gram sets of the candidates, made once each
    for i, j in sorted(lsh_candidates(sig, num_bands)):
        if uf.find(i) == uf.find(j):
            continue
        for d in (i, j):
            if d not in sets:
                sets[d] = np.unique(shingles[d])
        if jaccard(sets[i], sets[j]) >= jaccard_threshold:
            uf.union(i, j)
    return [uf.find(i) for i in range(len(shingles))]


def minhash_deduplication(
    input_files: list[os.PathLike],
    num_hashes: int,
    num_bands: int,
    ngrams: int,
    jaccard_threshold: float,
    output_directory: os.PathLike,
) -> None:
    """Write to `output_directory` (same names, bytes unchanged) every input file except
    the fuzzy duplicates: of each cluster only the first file in input order is kept."""
    paths = [Path(p) for p in input_files]
    out_dir = Path(output_directory)
    if any(p.resolve().parent == out_dir.resolve() for p in paths):
        raise ValueError(f"output directory {out_dir} holds the inputs; it would overwrite them")
    shingles = ngram_hash_lists([_read(p) for p in paths], ngrams)
    keep = duplicate_clusters(shingles, num_hashes, num_bands, ngrams, jaccard_threshold)
    for i, path in enumerate(paths):
        if keep[i] == i:
            with atomic_path(out_dir / path.name) as tmp:
                tmp.write_bytes(path.read_bytes())


def _read(path: Path) -> str:
    return path.read_text(encoding="utf-8", errors="replace")
