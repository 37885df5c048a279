"""Deduplication across shards: a per-shard pass, one global step, a per-shard rewrite.

Exact lines: each shard counts its line hashes; the global step adds the counts and keeps
the hashes seen more than once; each shard then drops those lines (and documents left
empty). MinHash: each shard computes signatures; the global step bands them, checks true
Jaccard on candidate pairs (re-reading only those documents), clusters with union-find and
keeps the first document of each cluster in input order; each shard then drops the rest."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cs336_data.documents import DocumentWriter, read_documents
from cs336_data.shards import save_stats
from cs336_data.stats import StageStats


@dataclass
class DedupTask:
    input: str
    output: str
    work: str  # per-shard intermediate file (counts or signatures)
    shared: str  # the global step's result
    params: dict

    @property
    def name(self) -> str:
        return Path(self.input).name


def work_done(task: DedupTask) -> bool:
    return Path(task.work).is_file()


# ---- exact line dedup ---------------------------------------------------------------------


def count_task(task: DedupTask) -> None:
    from cs336_data.exact_dedup import line_key

    counts: Counter = Counter()
    for doc in read_documents(task.input):
        counts.update(map(line_key, doc["text"].split("\n")))
    keys = np.fromiter(counts.keys(), dtype=np.uint64, count=len(counts))
    values = np.fromiter(counts.values(), dtype=np.int64, count=len(counts))
    _save_npz(task.work, keys=keys, counts=values)


def merge_line_counts(tasks: list[DedupTask], shared: Path) -> None:
    """Global step: the hashes of lines seen more than once in all shards together."""
    keys = [np.load(t.work)["keys"] for t in tasks]
    counts = [np.load(t.work)["counts"] for t in tasks]
    allk = np.concatenate(keys) if keys else np.zeros(0, np.uint64)
    uniq, inv = np.unique(allk, return_inverse=True)
    total = np.bincount(
        inv, weights=np.concatenate(counts) if counts else None, minlength=len(uniq)
    )
    _save_npz(shared, dup=uniq[total > 1])


def rewrite_lines_task(task: DedupTask) -> None:
    from cs336_data.exact_dedup import line_key

    dup = set(np.load(task.shared)["dup"].tolist())
    st = StageStats()
    with DocumentWriter(task.output) as out:
        for doc in read_documents(task.input):
            st.take_in(len(doc["text"].encode()))
            lines = doc["text"].split("\n")
            kept = [line for line in lines if line_key(line) not in dup]
            doc["metadata"]["lines_removed"] = len(lines) - len(kept)
            if not "".join(kept).strip():
                st.remove("all_lines_duplicated", doc)
                continue
            doc["text"] = "\n".join(kept)
            st.keep(len(doc["text"].encode()))
            out.write(doc)
    save_stats(task.output, {"exact_dedup": st})


# ---- MinHash dedup ------------------------------------------------------------------------


def signature_task(task: DedupTask) -> None:
    from cs336_data.minhash import MinHasher, ngram_hashes

    p = task.params
    texts = [doc["text"] for doc in read_documents(task.input)]
    shingles = [ngram_hashes(t, p["ngrams"]) for t in texts]
    sig = MinHasher(p["num_hashes"], p["ngrams"], p.get("seed", 0)).signatures(shingles)
    _save_npz(task.work, sig=sig)


def cluster_signatures(tasks: list[DedupTask], shared: Path, params: dict) -> int:
    """Global step: which documents of each shard to drop; returns how many in all."""
    from cs336_data.minhash import UnionFind, jaccard, lsh_candidates, ngram_hashes

    sigs = [np.load(t.work)["sig"] for t in tasks]
    offsets = np.concatenate([[0], np.cumsum([len(s) for s in sigs])])
    total = int(offsets[-1])
    sig = np.concatenate(sigs) if total else np.zeros((0, params["num_hashes"]), np.uint32)
    pairs = sorted(lsh_candidates(sig, params["num_bands"]))
    needed = sorted({i for pair in pairs for i in pair})
    shingles = _load_shingles(tasks, offsets, needed, params["ngrams"], ngram_hashes)
    uf = UnionFind(total)
    for i, j in pairs:
        if uf.find(i) != uf.find(j) and jaccard(shingles[i], shingles[j]) >= params["threshold"]:
            uf.union(i, j)
    keep_of = np.array([uf.find(i) for i in range(total)], dtype=np.int64)
    drop = np.flatnonzero(keep_of != np.arange(total))
    _save_npz(shared, drop=drop, keep_of=keep_of, offsets=offsets)
    return len(drop)


def _load_shingles(tasks, offsets, needed: list[int], ngrams: int, ngram_hashes) -> dict:
    out = {}
    for s, task in enumerate(tasks):
        lo, hi = offsets[s], offsets[s + 1]
        wanted = {i - lo for i in needed if lo <= i < hi}
        if wanted:
            for n, doc in enumerate(read_documents(task.input)):
                if n in wanted:
                    out[lo + n] = ngram_hashes(doc["text"], ngrams)
    return out


def drop_duplicates_task(task: DedupTask) -> None:
    shared = np.load(task.shared)
    offsets, keep_of = shared["offsets"], shared["keep_of"]
    s = task.params["shard_index"]
    lo = int(offsets[s])
    st = StageStats()
    with DocumentWriter(task.output) as out:
        for n, doc in enumerate(read_documents(task.input)):
            st.take_in(len(doc["text"].encode()))
            if keep_of[lo + n] != lo + n:
                doc["metadata"]["duplicate_of_index"] = int(keep_of[lo + n])
                st.remove("near_duplicate", doc)
                continue
            st.keep(len(doc["text"].encode()))
            out.write(doc)
    save_stats(task.output, {"minhash_dedup": st})


def _save_npz(path, **arrays) -> None:
    from cs336_common.io import atomic_path

    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez(f, **arrays)
