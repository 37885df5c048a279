"""Chunked, parallel file encoding gives exactly the ids of encoding the whole text."""

import itertools
import random
from pathlib import Path

import numpy as np
import pytest

from cs336_basics import encode_file, text_chunks, train_bpe
from cs336_common import Tokenizer
from cs336_common.train.token_file import open_token_file

FIXTURES = Path(__file__).parent / "fixtures"
EOT = "<|endoftext|>"
SPECIALS = [EOT, EOT + EOT, "<s>"]


@pytest.fixture(scope="module")
def tokenizer():
    vocab, merges = train_bpe(FIXTURES / "corpus.en", 400, [EOT])
    return Tokenizer(vocab, merges, SPECIALS)


def _random_text(rng: random.Random, n: int, specials: bool) -> str:
    pool = ["the", " cat", "  ", "\n", "\n\n", "!\n", " \n", "é", "日本", "x\n", "'s", "\t"]
    pool += [EOT, "<s>", "<", "|>"] if specials else []
    return "".join(rng.choice(pool) for _ in range(n))


@pytest.mark.parametrize("window", [5, 1 << 16])  # bytes read at a time while seeking cuts
@pytest.mark.parametrize("specials", [True, False])
def test_chunks_encode_like_the_whole_text(tokenizer, tmp_path, specials, window):
    rng = random.Random(int(specials))
    for trial in range(20):
        text = _random_text(rng, 400, specials)
        path = tmp_path / f"t{trial}.txt"
        path.write_text(text, encoding="utf-8")
        raw = text.encode("utf-8")
        ranges = text_chunks.chunk_ranges(path, SPECIALS, rng.randint(1, 60), window=window)
        assert ranges[0][0] == 0 and ranges[-1][1] == len(raw)
        assert all(a[1] == b[0] for a, b in itertools.pairwise(ranges))
        pieces = [raw[s:e].decode("utf-8") for s, e in ranges]
        assert [i for p in pieces for i in tokenizer.encode(p)] == tokenizer.encode(text)


def test_cuts_at_the_first_special_token_after_each_chunk(tmp_path):
    raw = b"xx<|a|><|b|>yy<|a|>" * 50
    starts = [i for i in range(len(raw)) if raw.startswith((b"<|a|><|b|>", b"<|a|>x"), i)]
    starts.append(len(raw) - 5)  # the last "<|a|>"
    path = tmp_path / "t.txt"
    path.write_bytes(raw)
    for size in range(1, 40):
        cuts = [0]
        while later := [s for s in starts if s >= cuts[-1] + size]:
            cuts.append(later[0])
        # a 3-byte read window: specials straddle the windows
        ranges = text_chunks.chunk_ranges(path, ["<|a|>", "<|a|><|b|>"], size, window=3)
        assert ranges == list(itertools.pairwise([*cuts, len(raw)]))


@pytest.mark.parametrize("workers", [1, 2])
def test_encode_file_matches_encode(tokenizer, tmp_path, workers):
    rng = random.Random(workers)
    text = (FIXTURES / "corpus.en").read_text(encoding="utf-8") + _random_text(rng, 5000, True)
    path = tmp_path / "in.txt"
    path.write_text(text, encoding="utf-8")
    out = tmp_path / "out" / "in.bin"
    n = encode_file(tokenizer, path, out, num_workers=workers, chunk_bytes=4096)  # many chunks
    ids = open_token_file(out)
    assert ids.dtype == np.uint16
    assert n == len(ids)
    assert ids.tolist() == tokenizer.encode(text)


def test_empty_file(tokenizer, tmp_path):
    (tmp_path / "empty.txt").write_text("")
    assert encode_file(tokenizer, tmp_path / "empty.txt", tmp_path / "e.bin") == 0
    assert len(open_token_file(tmp_path / "e.bin")) == 0


def test_encode_file_errors_write_nothing(tokenizer, tmp_path):
    with pytest.raises(FileNotFoundError, match=r"missing\.txt"):
        encode_file(tokenizer, tmp_path / "missing.txt", tmp_path / "a.bin")
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"fine text\n" * 10 + b"\xc3(")
    with pytest.raises(ValueError, match="invalid UTF-8 at byte 100"):
        encode_file(tokenizer, bad, tmp_path / "b.bin", num_workers=1)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.txt"]


def test_single_process_encode_keeps_no_tokenizer_alive(tmp_path):
    import gc
    import weakref

    vocab = {i: bytes([i]) for i in range(256)}
    tok = Tokenizer(vocab, [], [EOT])
    (tmp_path / "in.txt").write_text("hello world" + EOT + "bye", encoding="utf-8")
    assert encode_file(tok, tmp_path / "in.txt", tmp_path / "o.bin", num_workers=1) == 15
    ref = weakref.ref(tok)
    del tok
    gc.collect()
    assert ref() is None  # no module global still holds it (and its piece cache)
