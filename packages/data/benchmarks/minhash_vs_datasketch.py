"""MinHash + LSH deduplication: cs336_data vs datasketch's MinHash/MinHashLSH, on the same
documents with the same parameters, end to end (normalise, shingle, sign, band, verify
candidates by true Jaccard, cluster). Checks that both find the same clusters; prints one
table of the median and spread of several runs.

Documents: sentences of the course's Wikipedia-style reference text (tests/fixtures)
shuffled into distinct documents, plus near copies with ~0.2% of words replaced (Jaccard ~0.97 with the original, far
from the threshold, so that LSH's misses, which differ between hash families, are rare).

    uv run python packages/data/benchmarks/minhash_vs_datasketch.py
"""

from __future__ import annotations

import argparse
import random
import re
import statistics
import time
from pathlib import Path

from cs336_data.minhash import duplicate_clusters, ngram_hash_lists, normalize

FIXTURE = Path(__file__).resolve().parents[1] / "tests/fixtures/high_quality_wiki_reference.txt"


def corpus(n_base: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    sentences = [s for s in re.split(r"(?<=[.!?])\s+", FIXTURE.read_text()) if len(s) > 40]
    vocab = sorted({w for s in sentences for w in s.split()})
    docs = []
    for _ in range(n_base):
        base = " ".join(rng.sample(sentences, rng.randint(8, 20))).split()
        docs.append(" ".join(base))
        for _ in range(rng.choice((0, 0, 1, 2))):
            docs.append(" ".join(rng.choice(vocab) if rng.random() < 0.002 else w for w in base))
    rng.shuffle(docs)
    return docs


def ours(docs: list[str], k: int, bands: int, n: int, threshold: float) -> list[int]:
    return duplicate_clusters(ngram_hash_lists(docs, n), k, bands, n, threshold)


def datasketch_lsh(docs: list[str], k: int, bands: int, n: int, threshold: float) -> list[int]:
    from datasketch import MinHash, MinHashLSH

    sets = []
    for d in docs:
        w = normalize(d).split()
        sets.append({" ".join(w[i : i + n]).encode() for i in range(max(1, len(w) - n + 1))})
    mhs = MinHash.bulk(sets, num_perm=k)
    lsh = MinHashLSH(num_perm=k, params=(bands, k // bands))
    with lsh.insertion_session() as session:
        for i, m in enumerate(mhs):
            session.insert(i, m)
    parent = list(range(len(docs)))

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for i, m in enumerate(mhs):
        for j in lsh.query(m):
            if j > i and find(i) != find(j):
                a, b = sets[i], sets[j]
                if len(a & b) / len(a | b) >= threshold:
                    ri, rj = find(i), find(j)
                    parent[max(ri, rj)] = min(ri, rj)
    return [find(i) for i in range(len(docs))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--docs", type=int, default=5000, help="distinct documents (plus copies)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--num-hashes", type=int, default=128)
    ap.add_argument("--num-bands", type=int, default=16)
    ap.add_argument("--ngrams", type=int, default=5)
    ap.add_argument("--threshold", type=float, default=0.8)
    args = ap.parse_args()
    docs = corpus(args.docs)
    params = (args.num_hashes, args.num_bands, args.ngrams, args.threshold)
    times: dict[str, list[float]] = {"cs336-data": [], "datasketch": []}
    cpu: dict[str, list[float]] = {"cs336-data": [], "datasketch": []}
    results = {}
    for _ in range(args.repeats):  # interleaved, so that load on the machine hits both
        for name, fn in (("cs336-data", ours), ("datasketch", datasketch_lsh)):
            t, c = time.perf_counter(), time.process_time()
            results[name] = fn(docs, *params)
            times[name].append(time.perf_counter() - t)
            cpu[name].append(time.process_time() - c)
    same = results["cs336-data"] == results["datasketch"]
    clusters = len(set(results["cs336-data"]))
    words = sum(len(d.split()) for d in docs)
    print(f"\n{len(docs)} documents ({words / len(docs):.0f} words on average), {clusters} "
          f"clusters; k={args.num_hashes}, bands={args.num_bands}, {args.ngrams}-grams, "
          f"threshold {args.threshold}; {args.repeats} runs; same clusters: {same}\n")  # fmt: skip
    print("| implementation | wall s (median) | min-max | CPU s (median) | docs/s (wall) | "
          "speed-up (wall) | speed-up (CPU) |")  # fmt: skip
    print("| --- | --- | --- | --- | --- | --- | --- |")
    ref, ref_cpu = statistics.median(times["datasketch"]), statistics.median(cpu["datasketch"])
    for name, ts in times.items():
        med, c = statistics.median(ts), statistics.median(cpu[name])
        print(f"| {name} | {med:.2f} | {min(ts):.2f}-{max(ts):.2f} | {c:.2f} | "
              f"{len(docs) / med:.0f} | {ref / med:.1f}x | {ref_cpu / c:.1f}x |")  # fmt: skip
    if not same:
        raise SystemExit("the two implementations found different clusters")


if __name__ == "__main__":
    main()
