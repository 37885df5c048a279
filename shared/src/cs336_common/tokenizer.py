"""Byte-level BPE tokenizer with GPT-2's exact algorithm.

Text is split on special tokens (longest first), cut into pre-tokens by GPT-2's regex,
and each pre-token's UTF-8 bytes are merged pair by pair, lowest merge rank first.
Encoding a pre-token is memoized, so on real text almost all the work is the regex.
"""

from __future__ import annotations

import heapq
import json
import os
from collections.abc import Iterable, Iterator
from itertools import chain, pairwise, repeat
from pathlib import Path

import regex

from cs336_common.checks import read_json
from cs336_common.errors import InputError
from cs336_common.gpt2_bytes import bytes_to_str, str_to_bytes
from cs336_common.io import write_text_atomic
from cs336_common.pretokenize import PRETOKEN_RE, normalize_special_tokens, special_tokens_re

FORMAT = "cs336-bpe"
FORMAT_VERSION = 1
FILE_NAME = "tokenizer.json"
# Memoized pre-tokens. Bounded so that a stream of ever-new strings (hashes, numbers)
# cannot grow memory; the first entries are the frequent words, so keeping them is enough.
_CACHE_SIZE = 1 << 18
# Pre-tokens longer than this many bytes take the O(n log n) merge loop (measured: the
# quadratic one is faster below about this length on English words, slower above).
_SHORT_PIECE = 32
# encode_iterable encodes its input this many characters at a time (a long line in slices).
_STREAM_BLOCK = 1 << 14
# The rightmost place no GPT-2 pre-token crosses (see `_safe_cut`): after a non-space
# followed by a space, or between two non-spaces of different classes (letter, number,
# other), except after an apostrophe, which may begin a contraction ("'s").
_CUT_RE = regex.compile(
    r"(?r)(?:\S(?=\s)|\p{L}(?=[^\s\p{L}])|\p{N}(?=[^\s\p{N}])|[^\s\p{L}\p{N}'](?=[\p{L}\p{N}]))"
)


class _PieceCache(dict):
    """pre-token -> ids; a miss runs BPE (looked up from C via `map(cache.__getitem__)`)."""

    def __init__(self, bpe):
        super().__init__()
        self._bpe = bpe

    def __missing__(self, piece: str) -> tuple[int, ...]:
        ids = self._bpe(piece)
        if len(self) < _CACHE_SIZE:
            self[piece] = ids
        return ids


class Tokenizer:
    """`Tokenizer(vocab, merges, special_tokens)`: vocab maps id -> bytes and must hold
    all 256 single bytes; merges are byte pairs in rank order. Special tokens missing from
    the vocabulary get the next free ids."""

    def __init__(
        self,
        vocab: dict[int, bytes],
        merges: list[tuple[bytes, bytes]],
        special_tokens: list[str] | None = None,
    ):
        self._vocab = {int(i): bytes(b) for i, b in vocab.items()}
        ids_of: dict[bytes, int] = {}
        for i in sorted(self._vocab):  # duplicate byte strings: the lowest id wins
            ids_of.setdefault(self._vocab[i], i)
        missing = [b for b in range(256) if bytes([b]) not in ids_of]
        if missing:
            raise ValueError(
                f"vocab lacks {len(missing)} single-byte tokens (e.g. {bytes([missing[0]])!r}); "
                "a byte-level BPE vocabulary must hold all 256"
            )
        self._byte_ids = [ids_of[bytes([b])] for b in range(256)]

        self._special_tokens = normalize_special_tokens(special_tokens)
        self._special_ids: dict[str, int] = {}
        for token in self._special_tokens:
            raw = token.encode("utf-8")
            if raw not in ids_of:
                new_id = max(self._vocab) + 1
                self._vocab[new_id] = raw
                ids_of[raw] = new_id
            self._special_ids[token] = ids_of[raw]
        self._special_re = special_tokens_re(self._special_tokens)

        self._merges = [(bytes(a), bytes(b)) for a, b in merges]
        # (left id, right id) -> rank << bits | merged id: one lookup gives both, and values
        # compare as their ranks do (a pair has one rank), so `min` finds the next merge.
        bits = max(self._vocab).bit_length()
        self._id_mask = (1 << bits) - 1
        self._no_merge = len(self._merges) << bits  # above every value: "no such merge"
        self._merge_of: dict[tuple[int, int], int] = {}
        for rank, (a, b) in enumerate(self._merges):
            if a not in ids_of or b not in ids_of or a + b not in ids_of:
                raise ValueError(
                    f"merge {rank} ({a!r}, {b!r}): both parts and {a + b!r} must be in the vocab"
                )
            self._merge_of.setdefault((ids_of[a], ids_of[b]), rank << bits | ids_of[a + b])
        self._cache = _PieceCache(self._bpe)

    # ---- construction and persistence -------------------------------------------------

    @classmethod
    def from_files(
        cls,
        vocab_filepath: str | os.PathLike,
        merges_filepath: str | os.PathLike,
        special_tokens: list[str] | None = None,
    ) -> Tokenizer:
        """Load GPT-2's `vocab.json` ({token: id}) and `merges.txt` ("a b" per line), both
        in GPT-2's byte-to-character encoding (`cs336_common.gpt2_bytes`)."""
        raw_vocab = read_json(vocab_filepath, "vocab file")
        if not isinstance(raw_vocab, dict) or not all(type(i) is int for i in raw_vocab.values()):
            raise InputError(f"{vocab_filepath}: expected a JSON object of token -> integer id")
        vocab = {i: str_to_bytes(t, where=f"{vocab_filepath}") for t, i in raw_vocab.items()}
        merges = []
        with open(merges_filepath, encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                line = line.rstrip("\r\n")
                if not line or line.startswith("#version"):
                    continue
                parts = line.split(" ")
                if len(parts) != 2:
                    raise InputError(f"{merges_filepath}:{n}: expected 'a b', got {line!r}")
                where = f"{merges_filepath}:{n}"
                merges.append(
                    (str_to_bytes(parts[0], where=where), str_to_bytes(parts[1], where=where))
                )
        return cls(vocab, merges, special_tokens)

    def save(self, directory: str | os.PathLike) -> Path:
        """Write `<directory>/tokenizer.json` atomically (GPT-2 byte characters, so the
        file is readable) and return its path."""
        path = Path(directory) / FILE_NAME
        state = {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "special_tokens": self._special_tokens,
            "vocab": {str(i): bytes_to_str(b) for i, b in sorted(self._vocab.items())},
            "merges": [f"{bytes_to_str(a)} {bytes_to_str(b)}" for a, b in self._merges],
        }
        write_text_atomic(path, json.dumps(state, ensure_ascii=False, indent=0) + "\n")
        return path

    @classmethod
    def load(cls, directory: str | os.PathLike) -> Tokenizer:
        """Read a tokenizer written by `save` (the directory or its tokenizer.json)."""
        path = Path(directory)
        if path.is_dir():
            path = path / FILE_NAME
        if not path.is_file():
            raise FileNotFoundError(
                f"no tokenizer at {path}: train one with `cs336-basics tokenizer train`"
            )
        vocab, merges, special_tokens = _read_state(path)
        try:
            return cls(vocab, merges, special_tokens)
        except (TypeError, ValueError) as e:
            raise InputError(f"{path}: {e}") from None

    # ---- properties ---------------------------------------------------------------------

    @property
    def vocab_size(self) -> int:
        """One more than the largest id: the embedding table size a model needs."""
        return max(self._vocab) + 1

    @property
    def special_tokens(self) -> list[str]:
        return list(self._special_tokens)

    @property
    def vocab(self) -> dict[int, bytes]:
        return dict(self._vocab)

    @property
    def merges(self) -> list[tuple[bytes, bytes]]:
        return list(self._merges)

    def token_id(self, special: str) -> int:
        """The id of a special token, e.g. `tok.token_id("<|endoftext|>")`."""
        try:
            return self._special_ids[special]
        except KeyError:
            raise KeyError(
                f"{special!r} is not a special token of this tokenizer "
                f"(special tokens: {self._special_tokens})"
            ) from None

    def __repr__(self) -> str:
        return (
            f"Tokenizer(vocab_size={self.vocab_size}, merges={len(self._merges)}, "
            f"special_tokens={self._special_tokens})"
        )

    # ---- encoding -----------------------------------------------------------------------

    def encode(self, text: str) -> list[int]:
        if self._special_re is None:
            return self._encode_plain(text)
        ids: list[int] = []
        start = 0
        for m in self._special_re.finditer(text):
            ids += self._encode_plain(text[start : m.start()])
            ids.append(self._special_ids[m[0]])
            start = m.end()
        ids += self._encode_plain(text[start:])
        return ids

    def encode_iterable(self, iterable: Iterable[str]) -> Iterator[int]:
        """Encode a stream of strings (e.g. a file's lines) lazily, with exactly the ids
        `encode` gives on their concatenation.

        Memory is bounded by a 16 K-character block whatever the lines look like (a
        50 MB line, no whitespace), except that one pre-token, an unbroken run of letters,
        digits or punctuation, is always encoded whole."""
        parts: list[str] = []
        size, limit = 0, _STREAM_BLOCK
        for chunk in iterable:
            for start in range(0, len(chunk), _STREAM_BLOCK):
                piece = chunk[start : start + _STREAM_BLOCK]  # the chunk itself if short
                parts.append(piece)
                size += len(piece)
                if size < limit:
                    continue
                text = "".join(parts)
                cut = self._safe_cut(text)
                yield from self.encode(text[:cut])
                parts, size = [text[cut:]], len(text) - cut
                # one pre-token longer than a block: wait for it to double, not O(n^2)
                limit = max(_STREAM_BLOCK, 2 * size)
        yield from self.encode("".join(parts))

    def _safe_cut(self, text: str) -> int:
        """An index where encoding text[:i] and text[i:] apart gives the same ids as
        encoding text whole (0 if there is none yet).

        No pre-token continues from a non-space into a space (GPT-2's regex lets a
        pre-token start with a space but never end in one after a non-space), nor from
        a letter into a non-letter, a digit into a non-digit, or punctuation (other than
        an apostrophe) into a letter or digit; each side's pre-tokens are then decided by
        its own characters. The cut must not split a special token, and the last
        `longest special` characters stay behind since a special may continue there.
        """
        longest = max(map(len, self._special_tokens), default=0)
        if len(text) <= longest:
            return 0
        m = _CUT_RE.search(text, 0, len(text) - longest)
        cut = m.end() if m else 0
        if self._special_re is not None:
            for s in self._special_re.finditer(text, 0, cut + longest):
                if s.start() < cut < s.end():
                    return s.start()
        return cut

    def _encode_plain(self, text: str) -> list[int]:
        return list(chain.from_iterable(map(self._cache.__getitem__, PRETOKEN_RE.findall(text))))

    def _bpe(self, piece: str) -> tuple[int, ...]:
        """Merge one pre-token's bytes, the lowest-ranked adjacent pair first, leftmost
        first among equals (GPT-2's order: the pairs a merge creates rank after it)."""
        try:
            raw = piece.encode("utf-8")
        except UnicodeEncodeError:  # lone surrogates become U+FFFD, as tiktoken does
            raw = piece.encode("utf-16", "surrogatepass").decode("utf-16", "replace").encode()
        ids = list(map(self._byte_ids.__getitem__, raw))
        if len(ids) > _SHORT_PIECE:
            return self._bpe_long(ids)
        # Rescanning for the minimum after each merge is quadratic, but on a short piece
        # (the common case: a word) C's `min` and `index` beat a heap's Python bookkeeping.
        get, none, mask = self._merge_of.get, self._no_merge, self._id_mask
        merges = list(map(get, pairwise(ids), repeat(none)))  # merges[i]: of ids[i], ids[i+1]
        while merges and (m := min(merges)) != none:
            i = merges.index(m)
            ids[i] = new = m & mask
            del ids[i + 1], merges[i]
            if i:
                merges[i - 1] = get((ids[i - 1], new), none)
            if i < len(merges):
                merges[i] = get((new, ids[i + 1]), none)
        return tuple(ids)

    def _bpe_long(self, ids: list[int | None]) -> tuple[int, ...]:
        """`_bpe` for a long pre-token (a base64 blob, a run of dashes): a heap of
        (merge, position) over a linked list keeps it O(n log n)."""
        get, mask = self._merge_of.get, self._id_mask
        n = len(ids)
        nxt = list(range(1, n + 1))  # nxt[i]: position of the token after i (n: none)
        prv = list(range(-1, n - 1))
        heap = [(m, i) for i, p in enumerate(pairwise(ids)) if (m := get(p)) is not None]
        heapq.heapify(heap)
        while heap:
            m, i = heapq.heappop(heap)
            left, j = ids[i], nxt[i]
            if left is None or j == n or get((left, ids[j])) != m:
                continue  # stale: a merge has changed this position since
            ids[i] = new = m & mask
            ids[j] = None
            k = nxt[i] = nxt[j]
            if k < n:
                prv[k] = i
                if (m := get((new, ids[k]))) is not None:
                    heapq.heappush(heap, (m, i))
            h = prv[i]
            if h >= 0 and (m := get((ids[h], new))) is not None:
                heapq.heappush(heap, (m, h))
        return tuple(t for t in ids if t is not None)

    # ---- decoding -----------------------------------------------------------------------

    def decode(self, ids: Iterable[int]) -> str:
        """Join the tokens' bytes and decode them; malformed UTF-8 becomes U+FFFD."""
        return self.decode_bytes(ids).decode("utf-8", errors="replace")

    def decode_bytes(self, ids: Iterable[int]) -> bytes:
        try:
            return b"".join(map(self._vocab.__getitem__, ids))
        except KeyError as e:
            raise ValueError(
                f"token id {e.args[0]!r} is not in the vocabulary (ids 0..{self.vocab_size - 1})"
            ) from None


def _read_state(path: Path) -> tuple[dict[int, bytes], list[tuple[bytes, bytes]], list[str]]:
    """(vocab, merges, special tokens) of a `Tokenizer.save` file, every field checked:
    a malformed one is an `InputError` naming the file and the field."""
    state = read_json(path, "tokenizer file")
    if not isinstance(state, dict):
        raise InputError(f"{path}: expected a JSON object, got {type(state).__name__}")
    if state.get("format") != FORMAT or state.get("version") != FORMAT_VERSION:
        raise InputError(
            f"{path}: format {state.get('format')!r} version {state.get('version')!r}, "
            f"expected {FORMAT!r} version {FORMAT_VERSION}"
        )
    raw_vocab, raw_merges = state.get("vocab"), state.get("merges")
    specials = state.get("special_tokens", [])
    if not isinstance(raw_vocab, dict):
        raise InputError(f"{path}: 'vocab' must be an object of id -> token")
    if not isinstance(raw_merges, list) or not all(isinstance(m, str) for m in raw_merges):
        raise InputError(f"{path}: 'merges' must be a list of 'a b' strings")
    if not isinstance(specials, list) or not all(isinstance(t, str) for t in specials):
        raise InputError(f"{path}: 'special_tokens' must be a list of strings")
    vocab = {}
    for key, token in raw_vocab.items():
        if not key.isdigit() or not isinstance(token, str):
            raise InputError(f"{path}: vocab entry {key!r}: {token!r} is not id -> token string")
        vocab[int(key)] = str_to_bytes(token, where=f"{path}: vocab id {key}")
    merges = []
    for rank, merge in enumerate(raw_merges):
        parts = merge.split(" ")
        if len(parts) != 2:
            raise InputError(f"{path}: merge {rank} is {merge!r}, expected 'a b'")
        where = f"{path}: merge {rank}"
        merges.append((str_to_bytes(parts[0], where=where), str_to_bytes(parts[1], where=where)))
    return vocab, merges, specials
