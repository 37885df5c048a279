"""train_bpe against a brute-force BPE written from the rules (recount everything each step)."""

import collections
import itertools
import random
from pathlib import Path

import pytest
import regex

from cs336_basics import text_chunks, train_bpe
from cs336_basics.bpe import TooFewMergesWarning
from cs336_common.errors import InputError

FIXTURES = Path(__file__).parent / "fixtures"
EOT = "<|endoftext|>"
GPT2_PAT = r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""


def reference_bpe(text: str, vocab_size: int, special_tokens: list[str]):
    """The rules, naively: split on specials, pre-tokenize, then repeatedly recount all
    pairs and merge the most frequent (ties: the greater pair of byte strings)."""
    docs = [text]
    for special in sorted(special_tokens, key=len, reverse=True):
        docs = [piece for doc in docs for piece in doc.split(special)]
    words = collections.Counter()
    for doc in docs:
        for m in regex.finditer(GPT2_PAT, doc):
            words[tuple(bytes([b]) for b in m.group().encode("utf-8"))] += 1
    vocab = [bytes([i]) for i in range(256)] + [t.encode("utf-8") for t in special_tokens]
    merges = []
    while len(vocab) < vocab_size:
        pairs = collections.Counter()
        for word, n in words.items():
            for pair in itertools.pairwise(word):
                pairs[pair] += n
        if not pairs:
            break
        best = max(pairs, key=lambda p: (pairs[p], p))
        merges.append(best)
        vocab.append(best[0] + best[1])
        new_words = collections.Counter()
        for word, n in words.items():
            out, i = [], 0
            while i < len(word):
                if word[i : i + 2] == best:
                    out.append(best[0] + best[1])
                    i += 2
                else:
                    out.append(word[i])
                    i += 1
            new_words[tuple(out)] += n
        words = new_words
    return dict(enumerate(vocab)), merges


def _random_corpus(rng: random.Random, num_docs: int) -> str:
    syllables = ["ab", "ba", "a", "b", "c", "abc", " ", "  ", "\n", "é", "日本", "12", "'s", "!"]
    docs = [
        "".join(rng.choice(syllables) for _ in range(rng.randint(1, 30))) for _ in range(num_docs)
    ]
    return EOT.join(docs)


@pytest.mark.parametrize("seed", range(6))
def test_matches_reference_on_random_corpora(tmp_path, seed):
    rng = random.Random(seed)
    path = tmp_path / "corpus.txt"
    text = _random_corpus(rng, 40)
    path.write_text(text, encoding="utf-8")
    vocab_size = rng.randint(260, 330)
    assert train_bpe(path, vocab_size, [EOT]) == reference_bpe(text, vocab_size, [EOT])


def test_corpus_en_vocab_500_matches_reference():
    path = FIXTURES / "corpus.en"
    vocab, merges = train_bpe(path, 500, [EOT])
    assert len(vocab) == 500
    assert (vocab, merges) == reference_bpe(path.read_text(encoding="utf-8"), 500, [EOT])


def test_workers_and_chunking_do_not_change_the_result(tmp_path):
    rng = random.Random(7)
    text = _random_corpus(rng, 3000) + "\n".join(_random_corpus(rng, 1) for _ in range(300))
    path = tmp_path / "corpus.txt"
    path.write_text(text, encoding="utf-8")
    expected = train_bpe(path, 400, [EOT], num_workers=1)
    assert len(text_chunks.chunk_ranges(path, [EOT], 4096)) > 8  # many chunks
    assert train_bpe(path, 400, [EOT], num_workers=2, chunk_bytes=4096) == expected
    assert train_bpe(path, 400, [EOT], num_workers=1, chunk_bytes=4096) == expected


def test_overlapping_special_tokens_are_never_counted(tmp_path):
    specials = ["<|a|>", "<|a|><|b|>"]
    text = "x<|a|><|b|>y<|a|>z<|b|> xx<|a|><|b|><|a|>"
    path = tmp_path / "c.txt"
    path.write_text(text, encoding="utf-8")
    with pytest.warns(TooFewMergesWarning):  # a short text: 4 merges, not 22
        vocab, merges = train_bpe(path, 280, specials)
    assert (vocab, merges) == reference_bpe(text, 280, specials)
    assert vocab[256] == b"<|a|>" and vocab[257] == b"<|a|><|b|>"


def test_stops_when_pairs_run_out_and_refuses_an_empty_text(tmp_path):
    path = tmp_path / "tiny.txt"
    path.write_text("abab", encoding="utf-8")
    with pytest.warns(TooFewMergesWarning, match="allows only 2 merges.*258 tokens"):
        vocab, merges = train_bpe(path, 1000, [])
    assert merges == [(b"a", b"b"), (b"ab", b"ab")]
    assert len(vocab) == 258
    for text in ("", EOT + EOT):
        path.write_text(text, encoding="utf-8")
        with pytest.raises(InputError, match=r"tiny\.txt: no text to train on"):
            train_bpe(path, 300, [EOT])


def test_bad_input_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"no-such\.txt"):
        train_bpe(tmp_path / "no-such.txt", 300, [])
    path = tmp_path / "c.txt"
    path.write_text("hello", encoding="utf-8")
    with pytest.raises(ValueError, match="at least 258"):
        train_bpe(path, 257, ["<a>", "<b>"])
    with pytest.raises(ValueError, match="above the limit"):
        train_bpe(path, 2_000_000, [])
    with pytest.raises(TypeError, match="list of strings"):
        train_bpe(path, 300, EOT)
    path.write_bytes("héllo wörld ".encode() * 3 + b"\xff\xfe bad")
    with pytest.raises(ValueError, match=r"invalid UTF-8 at byte 42"):
        train_bpe(path, 300, [])
