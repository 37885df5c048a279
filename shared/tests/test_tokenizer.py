"""The tokenizer against tiktoken's GPT-2 encoding, built offline from the same files."""

import json
import math
import pickle
import random
import tracemalloc
from itertools import pairwise
from pathlib import Path

import pytest
import tiktoken

from cs336_common import Tokenizer
from cs336_common.gpt2_bytes import str_to_bytes

FIXTURES = Path(__file__).parent / "fixtures"
EOT = "<|endoftext|>"
# Written out here rather than imported, so the reference does not share our regex.
GPT2_PAT = r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""

HARD = [
    "",
    " ",
    "Hello, world!",
    "  leading   runs    of spaces  ",
    "tabs\t\tand\r\nwindows\r\n\r\nnewlines\n\n\n\nx\n",
    "trailing spaces   \n   \n",
    "it's we'll they've I'M you're he'd 'S",
    "1234567890 3.14159 1,000,000 ２０２４",
    "emoji 😀👍🏽 family 👨‍👩‍👧‍👦 flags 🇫🇷🇯🇵",
    "CJK 日本語のテキスト 中文字符 한국어 텍스트",
    "Arabic مرحبا بالعالم and Hebrew שלום",
    "combining e\u0301 a\u0308 and zero\u200bwidth",
    "nbsp\u00a0and ideographic\u3000space",
    f"two docs{EOT}second doc{EOT}",
    f"{EOT}{EOT} back to back {EOT}",
    f"near misses <|endoftext| <|endoftext|x|> <{EOT}>",
    "lone surrogate \ud800 here",
    "control \x00\x01\x7f chars",
    "a" * 300 + " " + "ab" * 200,
    "-" * 5000 + "x" * 3000 + "=" * 4001,  # long pre-tokens
]
_POOL = [
    *"abcxyz ABC.,'!?-_ 0123456789\n\t\r",
    *"éüßñçøå",
    *"日本語中文한국",
    *"مرحبا",
    "😀",
    "👍🏽",
    "\u00a0",
    "\u3000",
    "  ",
    "\n\n",
    "'s",
    "'ll",
    EOT,
    "<|",
    "|>",
]


def _random_text(rng: random.Random, n: int) -> str:
    return "".join(rng.choice(_POOL) for _ in range(n))


@pytest.fixture(scope="module")
def gpt2():
    return Tokenizer.from_files(
        FIXTURES / "gpt2_vocab.json", FIXTURES / "gpt2_merges.txt", special_tokens=[EOT]
    )


@pytest.fixture(scope="module")
def tiktoken_gpt2():
    vocab = json.loads((FIXTURES / "gpt2_vocab.json").read_text(encoding="utf-8"))
    ranks = {str_to_bytes(t): i for t, i in vocab.items() if t != EOT}
    return tiktoken.Encoding(
        name="gpt2-offline",
        pat_str=GPT2_PAT,
        mergeable_ranks=ranks,
        special_tokens={EOT: vocab[EOT]},
    )


def test_hard_strings_match_tiktoken_and_round_trip(gpt2, tiktoken_gpt2):
    for text in HARD:
        ids = gpt2.encode(text)
        assert ids == tiktoken_gpt2.encode(text, allowed_special="all"), text
        if "\ud800" not in text:
            assert gpt2.decode(ids) == text


def test_random_strings_match_tiktoken_and_round_trip(gpt2, tiktoken_gpt2):
    rng = random.Random(0)
    for _ in range(300):
        text = _random_text(rng, rng.randint(1, 80))
        ids = gpt2.encode(text)
        assert ids == tiktoken_gpt2.encode(text, allowed_special="all"), repr(text)
        assert gpt2.decode(ids) == text


def test_random_unicode_matches_tiktoken(gpt2, tiktoken_gpt2):
    """Arbitrary code points (all planes, no surrogates): any script, any category."""
    rng = random.Random(1)
    for _ in range(100):
        cps = [rng.choice([rng.randint(0, 0x7F), rng.randint(0x80, 0x2FFFF)]) for _ in range(40)]
        text = "".join(chr(c) for c in cps if not 0xD800 <= c < 0xE000)
        assert gpt2.encode(text) == tiktoken_gpt2.encode(text, disallowed_special=())
        assert gpt2.decode(gpt2.encode(text)) == text


def test_overlapping_special_tokens_match_longest_first():
    tok = Tokenizer.from_files(
        FIXTURES / "gpt2_vocab.json",
        FIXTURES / "gpt2_merges.txt",
        special_tokens=[EOT, EOT + EOT],
    )
    double = tok.token_id(EOT + EOT)
    assert double == 50257  # not in GPT-2's vocabulary: appended
    assert tok.vocab_size == 50258
    text = f"a{EOT}{EOT}{EOT}b"
    ids = tok.encode(text)
    assert ids == [*tok.encode("a"), double, tok.token_id(EOT), *tok.encode("b")]
    assert tok.decode(ids) == text


def test_decode_replaces_malformed_utf8(gpt2):
    rng = random.Random(2)
    byte_id = {t[0]: i for i, t in gpt2.vocab.items() if len(t) == 1}
    for _ in range(200):
        raw = bytes(rng.randint(0, 255) for _ in range(rng.randint(1, 12)))
        assert gpt2.decode([byte_id[b] for b in raw]) == raw.decode("utf-8", errors="replace")
    with pytest.raises(ValueError, match="token id 99999"):
        gpt2.decode([1, 99999])


def test_encode_iterable_equals_encode_on_any_split(gpt2):
    rng = random.Random(3)
    text = "".join(
        _random_text(rng, 200) + rng.choice(["\n", "\n\n\n", "   ", EOT]) for _ in range(2000)
    )
    cuts = sorted(rng.sample(range(len(text)), 5000))
    pieces = [text[i:j] for i, j in zip([0, *cuts], [*cuts, len(text)], strict=True)]
    assert list(gpt2.encode_iterable(pieces)) == gpt2.encode(text)
    lines = text.splitlines(keepends=True)
    assert list(gpt2.encode_iterable(lines)) == gpt2.encode(text)
    no_spaces = "x" * 200_000 + " y" + EOT * 3
    assert list(gpt2.encode_iterable(no_spaces)) == gpt2.encode(no_spaces)  # char by char
    assert list(gpt2.encode_iterable(iter([]))) == []


def test_encode_iterable_memory_is_flat(gpt2):
    """~4 MB of text streamed line by line: peak Python allocations stay a small fraction."""
    rng = random.Random(4)
    words = [
        "".join(rng.choice("abcdefghij") for _ in range(rng.randint(1, 8))) for _ in range(500)
    ]
    lines = [" ".join(rng.choice(words) for _ in range(15)) + "\n" for _ in range(200)]
    num_lines = 50_000
    total_chars = sum(len(lines[i % 200]) for i in range(num_lines))
    assert total_chars > 3_500_000

    tracemalloc.start()
    count = 0
    for _ in gpt2.encode_iterable(lines[i % 200] for i in range(num_lines)):
        count += 1
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert count > 500_000
    assert peak < 2_000_000, f"peak {peak / 1e6:.1f} MB while streaming {total_chars / 1e6:.1f} MB"


# pieces whose letters, digits, punctuation and apostrophes (contractions) meet with no
# whitespace: a stream of them can only be cut where two character classes meet
_NO_SPACE = ["ab", "Zq", "12", "7", "-", "x'y", "'s", "'ll", "'", "é", "e\u0301", "日本", "(q)",
             "...", "٣", "<|", "|>", EOT]  # fmt: skip


def test_encode_iterable_cuts_text_without_whitespace_exactly(gpt2, tiktoken_gpt2):
    rng = random.Random(5)
    text = "".join(rng.choice(_NO_SPACE) for _ in range(150_000))  # ~300 K characters
    cuts = sorted(rng.sample(range(len(text)), 40))
    pieces = [text[i:j] for i, j in zip([0, *cuts], [*cuts, len(text)], strict=True)]
    want = tiktoken_gpt2.encode(text, allowed_special="all")
    assert gpt2.encode(text) == want
    assert list(gpt2.encode_iterable(pieces)) == want  # pieces both shorter and longer than 64 K
    assert list(gpt2.encode_iterable([text])) == want


@pytest.mark.parametrize("sep", ["", " "])
def test_encode_iterable_memory_is_bounded_on_one_long_line(gpt2, sep):
    """One 2 MB line, with or without spaces: peak allocations stay under 1 MB (they grew
    by 20 to 100 bytes per input byte when a line was encoded whole). Letters, digits
    and punctuation alternate, so that the distinct pre-tokens, and with them the
    tokenizer's bounded cache, stay few."""
    rng = random.Random(6)
    groups = (["ab", "Zq", "x'y", "é", "日本"], ["12", "7", "٣"], ["-", "(", "...", "'"])
    n = 250_000 if sep else 330_000
    line = sep.join(rng.choice(group) for _ in range(n) for group in groups)
    assert len(line.encode()) > 2_000_000
    peaks = []
    for text in (line[:1000], line):
        tracemalloc.start()
        count = sum(1 for _ in gpt2.encode_iterable([text]))
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
    assert count > n
    assert peaks[1] < 2_500_000, (
        f"peak {peaks[1] / 1e6:.1f} MB on a {len(line) / 1e6:.1f} M-char line"
    )


def test_save_load_round_trip(gpt2, tmp_path):
    path = gpt2.save(tmp_path / "tok")
    assert [p.name for p in path.parent.iterdir()] == ["tokenizer.json"]  # no temp files left
    back = Tokenizer.load(tmp_path / "tok")
    assert back.vocab == gpt2.vocab
    assert back.merges == gpt2.merges
    assert back.special_tokens == gpt2.special_tokens
    copied = pickle.loads(pickle.dumps(gpt2))  # how spawn-started worker pools receive it
    for text in HARD:
        assert back.encode(text) == copied.encode(text) == gpt2.encode(text)


def _reference_bpe(raw: bytes, ranks: dict[tuple[bytes, bytes], int]) -> list[bytes]:
    """The rule itself: merge the lowest-ranked adjacent pair, leftmost first, until none."""
    parts = [bytes([b]) for b in raw]
    while len(parts) > 1:
        rank, i = min((ranks.get(p, math.inf), i) for i, p in enumerate(pairwise(parts)))
        if rank == math.inf:
            break
        parts[i : i + 2] = [parts[i] + parts[i + 1]]
    return parts


def test_merge_order_matches_the_rule_on_random_vocabs():
    """Merges in any order (not a trained list: a merge may use a token that a later merge
    makes, and one byte string may come from several pairs), on pieces short and long."""
    rng = random.Random(2)
    for _ in range(20):
        tokens, merges = [b"a", b"b", b"c"], []
        while len(merges) < 40:
            pair = (rng.choice(tokens), rng.choice(tokens))
            if pair not in merges:
                merges.append(pair)
                tokens.append(pair[0] + pair[1])
        rng.shuffle(merges)
        vocab = dict(enumerate(bytes([i]) for i in range(256)))
        for t in dict.fromkeys(tokens[3:]):
            vocab[len(vocab)] = t
        tok = Tokenizer(vocab, merges)
        ids_of = {b: i for i, b in vocab.items()}
        ranks = {m: r for r, m in enumerate(merges)}
        for _ in range(50):
            text = "".join(rng.choice("abc") for _ in range(rng.randint(1, 100)))
            expected = [ids_of[t] for t in _reference_bpe(text.encode(), ranks)]
            assert tok.encode(text) == expected, (merges, text)


def test_small_vocab_special_tokens_and_errors(tmp_path):
    vocab = {i: bytes([i]) for i in range(256)}
    vocab[256] = b"ab"
    tok = Tokenizer(vocab, [(b"a", b"b")], special_tokens=["<s>"])
    assert tok.encode("abab<s>a") == [256, 256, 257, ord("a")]
    assert tok.special_tokens == ["<s>"]
    assert tok.token_id("<s>") == 257
    with pytest.raises(KeyError, match="not a special token"):
        tok.token_id("</s>")
    assert Tokenizer(vocab, [(b"a", b"b")]).encode("<s>") == [ord(c) for c in "<s>"]
    with pytest.raises(TypeError, match="list of strings"):
        Tokenizer(vocab, [], "<s>")
    with pytest.raises(ValueError, match="single-byte"):
        Tokenizer({0: b"\x00"}, [])
    with pytest.raises(ValueError, match="merge 0"):
        Tokenizer(vocab, [(b"x", b"y")])
    with pytest.raises(FileNotFoundError, match="no tokenizer"):
        Tokenizer.load(tmp_path)
    (tmp_path / "tokenizer.json").write_text('{"format": "other"}')
    with pytest.raises(ValueError, match="expected 'cs336-bpe'"):
        Tokenizer.load(tmp_path)
    bad = tmp_path / "merges.txt"
    bad.write_text("#version: 0.2\na b c\n")
    with pytest.raises(ValueError, match=r"merges.txt:2"):
        Tokenizer.from_files(FIXTURES / "gpt2_vocab.json", bad)
