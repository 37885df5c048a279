"""What a shard pass can gather from the documents it writes, for the next stage's global
step: line-hash counts (exact dedup), MinHash signatures, or token ids. Gathering while
writing saves the next stage a pass over the data (and, on submitit, a round of jobs).

A collector's file is written atomically by `close()`, before the shard's stats file, so
a finished shard always has it."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np

from cs336_common.io import atomic_path


def save_npz(path, **arrays) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez(f, **arrays)


class LineCounts:
    def __init__(self, path: str, params: dict):
        self.path, self.counts = path, Counter()

    def add(self, doc: dict) -> None:
        from cs336_data.exact_dedup import line_key

        self.counts.update(map(line_key, doc["text"].split("\n")))

    def close(self) -> None:
        c = self.counts
        keys = np.fromiter(c.keys(), dtype=np.uint64, count=len(c))
        save_npz(self.path, keys=keys, counts=np.fromiter(c.values(), np.int64, count=len(c)))


class Signatures:
    def __init__(self, path: str, params: dict):
        from cs336_data.minhash import MinHasher

        self.path, self.ngrams, self.shingles = path, params["ngrams"], []
        self.hasher = MinHasher(params["num_hashes"], params["ngrams"], params.get("seed", 0))

    def add(self, doc: dict) -> None:
        self.shingles.append(doc["text"])  # texts, hashed in one batch by close()

    def close(self) -> None:
        from cs336_data.minhash import ngram_hash_lists

        shingles = ngram_hash_lists(self.shingles, self.ngrams)
        save_npz(self.path, sig=self.hasher.signatures(shingles))


class Tokens:
    """Each document's ids, then <|endoftext|>, streamed to a token file."""

    def __init__(self, path: str, params: dict):
        from cs336_data.tokenize_stage import EOT, load_tokenizer

        self.tok = load_tokenizer(params["tokenizer"])
        if EOT not in self.tok.special_tokens:
            raise ValueError(f"tokenizer {params['tokenizer']} has no {EOT} token")
        self.path, self.eot, self.n = path, self.tok.token_id(EOT), 0
        self._ctx = atomic_path(path)
        self._f = open(self._ctx.__enter__(), "wb")  # noqa: SIM115 (closed in close)

    def add(self, doc: dict) -> None:
        from cs336_common.train.token_file import token_dtype

        ids = np.asarray([*self.tok.encode(doc["text"]), self.eot])
        self._f.write(ids.astype(token_dtype(self.tok.vocab_size)).tobytes())
        self.n += len(ids)

    def close(self) -> None:
        from cs336_common.train.token_file import write_token_file_meta

        self._f.close()
        self._ctx.__exit__(None, None, None)
        write_token_file_meta(self.path, self.tok.vocab_size, self.n)


KINDS = {"lines": LineCounts, "minhash": Signatures, "tokens": Tokens}


def make(spec: tuple | None):
    """A collector from (kind, path, params), or None."""
    if spec is None:
        return None
    kind, path, params = spec
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    return KINDS[kind](path, params)


def collect_task(task) -> None:
    """A pass that only collects: every document of `task.input` into `task.collect`."""
    from cs336_data.documents import read_documents

    c = make(task.collect)
    for doc in read_documents(task.input):
        c.add(doc)
    c.close()
