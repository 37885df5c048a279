"""Deduplication across shards: a per-shard pass, one global step, a per-shard rewrite.

Exact lines: each shard counts its line hashes; the global step adds the counts and keeps
the hashes seen more than once; each shard then drops those lines (and documents left
empty). MinHash: each shard computes signatures; the global step bands them, checks true
Jaccard on candidate pairs (re-reading only those documents), clusters with union-find and
keeps the first document of each cluster in input order; each shard then drops the rest.
In the pipeline the per-shard pass is done by the previous stage (see collectors.py)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cs336_data import collectors
from cs336_data.documents import DocumentWriter, read_documents
from cs336_data.shards import save_stats
from cs336_data.stats import StageStats


@dataclass
class DedupTask:
    input: str
    output: str
    work: str  # per-shard file of the first pass (line counts or signatures)
    shared: str  # the global step's result
    params: dict
    collect: tuple | None = None  # what the rewrite gathers for the next stage

    @property
    def name(self) -> str:
        return Path(self.input).name


def work_done(task: DedupTask) -> bool:
    return Path(task.work).is_file()


def first_pass(task: DedupTask, kind: str) -> DedupTask:
    """The same shard as a collect-only task writing `task.work`."""
    return DedupTask(task.input, task.output, task.work, task.shared, task.params,
                     (kind, task.work, task.params))  # fmt: skip


def _rewrite(task: DedupTask, stage: str, edit) -> None:
    """Write the documents that `edit(n, doc)` keeps (it returns the removal rule or None)."""
    st = StageStats()
    collector = collectors.make(task.collect)
    with DocumentWriter(task.output) as out:
        for n, doc in enumerate(read_documents(task.input)):
            st.take_in(len(doc["text"].encode()))
            rule = edit(n, doc)
            if rule:
                st.remove(rule, doc)
                continue
            st.keep(len(doc["text"].encode()))
            out.write(doc)
            if collector:
                collector.add(doc)
    if collector:
        collector.close()
    save_stats(task.output, {stage: st})


# ---- exact line dedup ---------------------------------------------------------------------


def merge_line_counts(tasks: list[DedupTask], shared: Path) -> None:
    """Global step: the hashes of lines seen more than once in all shards together."""
    parts = [np.load(t.work) for t in tasks]
    keys = np.concatenate([p["keys"] for p in parts])
    uniq, inv = np.unique(keys, return_inverse=True)
    total = np.bincount(inv, weights=np.concatenate([p["counts"] for p in parts]))
    collectors.save_npz(shared, dup=uniq[total > 1])


def rewrite_lines_task(task: DedupTask) -> None:
    from cs336_data.exact_dedup import line_key

    dup = set(np.load(task.shared)["dup"].tolist())

    def edit(n: int, doc: dict) -> str | None:
        lines = doc["text"].split("\n")
        kept = [line for line in lines if line_key(line) not in dup]
        doc["metadata"]["lines_removed"] = len(lines) - len(kept)
        doc["text"] = "\n".join(kept)
        return None if doc["text"].strip() else "all_lines_duplicated"

    _rewrite(task, "exact_dedup", edit)


# ---- MinHash dedup ------------------------------------------------------------------------


def cluster_signatures(tasks: list[DedupTask], shared: Path, params: dict) -> int:
    """Global step: for every document, the one kept for its cluster; returns how many
    documents are dropped in all."""
    from cs336_data.minhash import UnionFind, jaccard, lsh_candidates, ngram_hashes

    sigs = [np.load(t.work)["sig"] for t in tasks]
    offsets = np.concatenate([[0], np.cumsum([len(s) for s in sigs])]).astype(np.int64)
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
    collectors.save_npz(shared, keep_of=keep_of, offsets=offsets)
    return int((keep_of != np.arange(total)).sum())


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
    keep_of = shared["keep_of"]
    lo = int(shared["offsets"][task.params["shard_index"]])

    def edit(n: int, doc: dict) -> str | None:
        if keep_of[lo + n] == lo + n:
            return None
        doc["metadata"]["duplicate_of_index"] = int(keep_of[lo + n])
        return "near_duplicate"

    _rewrite(task, "minhash_dedup", edit)
