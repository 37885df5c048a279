import random
from collections import Counter

import numpy as np
import pytest

from cs336_data import exact_line_deduplication, minhash_deduplication
from cs336_data.minhash import (
    MinHasher,
    duplicate_clusters,
    jaccard,
    lsh_candidates,
    ngram_hashes,
    normalize,
)


def test_exact_line_dedup_course_fixture(fixtures, tmp_path):
    inputs = sorted((fixtures / "documents_with_line_duplicates").glob("*.txt"))
    exact_line_deduplication(inputs, tmp_path)
    counts = Counter(line for p in inputs for line in p.read_text().splitlines())
    for p in inputs:  # reference: the lines seen once in the whole collection, in order
        want = [line for line in p.read_text().splitlines() if counts[line] == 1]
        assert (tmp_path / p.name).read_text().splitlines() == want
    assert sorted(x.name for x in tmp_path.iterdir()) == [p.name for p in inputs]


def test_exact_line_dedup_random(tmp_path):
    rng = random.Random(0)
    pool = [f"line {i} " + "x" * rng.randrange(5) for i in range(50)]
    src = tmp_path / "in"
    src.mkdir()
    files = []
    for f in range(6):
        path = src / f"doc{f}.txt"
        path.write_text("".join(rng.choice(pool) + "\n" for _ in range(30)))
        files.append(path)
    out = tmp_path / "out"
    exact_line_deduplication(files, out)
    counts = Counter(line for p in files for line in p.read_text().splitlines(keepends=True))
    for p in files:
        want = "".join(x for x in p.read_text().splitlines(keepends=True) if counts[x] == 1)
        assert (out / p.name).read_text() == want


def test_exact_line_dedup_refuses_to_overwrite_inputs(fixtures, tmp_path):
    p = tmp_path / "a.txt"
    p.write_text("x\n")
    with pytest.raises(ValueError, match="overwrite"):
        exact_line_deduplication([p], tmp_path)


def test_minhash_course_fixture(fixtures, tmp_path):
    inputs = sorted((fixtures / "documents_with_fuzzy_duplicates").glob("*.txt"))
    minhash_deduplication(inputs, 100, 10, 5, 0.8, tmp_path)
    kept = sorted(p.name for p in tmp_path.iterdir())
    assert kept == ["pytorch_license.txt", "rails_mit_license.txt"]  # react's MIT text dropped
    assert (tmp_path / "rails_mit_license.txt").read_bytes() == inputs[1].read_bytes()


def test_normalize():
    assert normalize("  Héllo,   WORLD!\n naïve—café_x ") == "hello world naivecafex"


def _ngram_set(text, n):
    words = normalize(text).split()
    return {tuple(words[i : i + n]) for i in range(len(words) - n + 1)}


def test_jaccard_of_hashes_equals_set_jaccard():
    rng = random.Random(3)
    vocab = [f"w{i}" for i in range(40)]
    for _ in range(20):
        a = " ".join(rng.choice(vocab) for _ in range(60))
        b = " ".join(rng.choice(vocab) for _ in range(60))
        sa, sb = _ngram_set(a, 2), _ngram_set(b, 2)
        want = len(sa & sb) / len(sa | sb)
        assert jaccard(ngram_hashes(a, 2), ngram_hashes(b, 2)) == pytest.approx(want)


def _corpus(seed, n_base=60, dups=3, words=200, edit=0.01):
    """Distinct random documents plus near copies with a few percent of words replaced."""
    rng = random.Random(seed)
    vocab = [f"tok{i}" for i in range(5000)]
    docs = []
    for _ in range(n_base):
        base = [rng.choice(vocab) for _ in range(words)]
        docs.append(" ".join(base))
        for _ in range(rng.randrange(dups)):
            copy = [rng.choice(vocab) if rng.random() < edit else w for w in base]
            docs.append(" ".join(copy))
    rng.shuffle(docs)
    return docs


def test_minhash_signature_estimates_jaccard():
    rng = random.Random(4)
    vocab = [f"t{i}" for i in range(300)]
    a = [rng.choice(vocab) for _ in range(400)]
    b = [w if rng.random() < 0.7 else rng.choice(vocab) for w in a]
    ha, hb = ngram_hashes(" ".join(a), 3), ngram_hashes(" ".join(b), 3)
    sig = MinHasher(512, 3, seed=1).signatures([ha, hb])
    assert np.mean(sig[0] == sig[1]) == pytest.approx(jaccard(ha, hb), abs=0.06)


def test_clusters_match_datasketch():
    datasketch = pytest.importorskip("datasketch")
    docs = _corpus(5)
    k, bands, n, threshold = 128, 16, 5, 0.7
    shingles = [ngram_hashes(d, n) for d in docs]
    ours = duplicate_clusters(shingles, k, bands, n, threshold)

    # Reference: datasketch's MinHash + MinHashLSH for candidates, exact n-gram set Jaccard.
    sets = [{" ".join(g).encode() for g in _ngram_set(d, n)} for d in docs]
    lsh = datasketch.MinHashLSH(num_perm=k, params=(bands, k // bands))
    mhs = []
    for i, s in enumerate(sets):
        m = datasketch.MinHash(num_perm=k, seed=1)
        m.update_batch(list(s))
        lsh.insert(i, m)
        mhs.append(m)
    parent = list(range(len(docs)))

    def find(x):
        while parent[x] != x:
            x = parent[x]
        return x

    for i, m in enumerate(mhs):
        for j in lsh.query(m):
            if j != i and len(sets[i] & sets[j]) / len(sets[i] | sets[j]) >= threshold:
                a, b = find(i), find(j)
                parent[max(a, b)] = min(a, b)
    theirs = [find(i) for i in range(len(docs))]
    assert ours == theirs
    assert len(set(ours)) == 60  # every near copy found, no distinct documents merged


def test_lsh_candidates_are_exactly_band_collisions():
    rng = np.random.default_rng(0)
    sig = rng.integers(0, 4, size=(30, 6), dtype=np.uint32)
    want = {
        (i, j)
        for i in range(30)
        for j in range(i + 1, 30)
        if any((sig[i, b * 2 : b * 2 + 2] == sig[j, b * 2 : b * 2 + 2]).all() for b in range(3))
    }
    assert lsh_candidates(sig, 3) == want
    with pytest.raises(ValueError, match="divisible"):
        lsh_candidates(sig, 4)


def test_first_document_of_cluster_is_kept_and_order_matters_not_for_clusters():
    docs = _corpus(6, n_base=10)
    shingles = [ngram_hashes(d, 3) for d in docs]
    keep = duplicate_clusters(shingles, 64, 16, 3, 0.6)
    assert all(keep[i] <= i and keep[keep[i]] == keep[i] for i in range(len(docs)))
