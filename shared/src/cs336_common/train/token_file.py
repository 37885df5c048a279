"""Token files: a flat little-endian array of token ids that `np.memmap` reads, plus a
JSON sidecar `<file>.json` naming its dtype, so a 10 GB corpus is never loaded whole."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from cs336_common.checks import read_json
from cs336_common.errors import InputError
from cs336_common.io import atomic_path, write_text_atomic

# ids checked per vectorised pass: 64 MB of uint32 at a time, whatever the file's size
_CHECK_CHUNK = 1 << 24


def token_dtype(vocab_size: int) -> np.dtype:
    """The smallest unsigned dtype that holds every id of a `vocab_size` vocabulary."""
    if vocab_size <= 0:
        raise ValueError(f"vocab_size must be positive, got {vocab_size}")
    return np.dtype("<u2") if vocab_size <= 2**16 else np.dtype("<u4")


def _sidecar(path: str | os.PathLike) -> Path:
    return Path(f"{os.fspath(path)}.json")


def write_token_file_meta(path: str | os.PathLike, vocab_size: int, num_tokens: int) -> None:
    """Write the sidecar of `path`; call it after the ids themselves are in place."""
    meta = {
        "dtype": token_dtype(vocab_size).str,
        "vocab_size": vocab_size,
        "num_tokens": num_tokens,
    }
    write_text_atomic(_sidecar(path), json.dumps(meta, indent=2) + "\n")


def save_token_file(path: str | os.PathLike, ids, vocab_size: int) -> None:
    """Write a whole in-memory id sequence as a token file (small corpora and tests)."""
    arr = np.asarray(ids)
    if arr.ndim != 1:
        raise ValueError(f"token ids must be 1-D, got shape {arr.shape}")
    if arr.size and (arr.min() < 0 or arr.max() >= vocab_size):
        raise ValueError(f"token ids must lie in [0, {vocab_size}), got [{arr.min()}, {arr.max()}]")
    with atomic_path(path) as tmp:
        arr.astype(token_dtype(vocab_size)).tofile(tmp)
    write_token_file_meta(path, vocab_size, int(arr.size))


_IDS_CHECKED: set[tuple[str, int, int, int]] = set()


def open_token_file(path: str | os.PathLike, vocab_size: int | None = None) -> np.memmap:
    """Memory-map a token file read-only, checking it against its sidecar; with
    ``vocab_size`` (the model's), also check that every id in the file is below it.

    A malformed sidecar, a size that disagrees with it or an id out of range is an
    `InputError` naming the file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"token file not found: {path}")
    side = _sidecar(path)
    if not side.is_file():
        raise FileNotFoundError(
            f"{side} is missing: token files are written by `cs336-basics tokenizer encode`"
        )
    dtype, num_tokens, file_vocab = _read_meta(side)
    expected = num_tokens * dtype.itemsize
    if path.stat().st_size != expected:
        raise InputError(
            f"{path}: {path.stat().st_size} bytes, but {side} says {num_tokens} tokens "
            f"of {dtype} ({expected} bytes); the file is truncated or from another run"
        )
    data = np.zeros(0, dtype=dtype) if expected == 0 else np.memmap(path, dtype=dtype, mode="r")
    if vocab_size is not None:
        if file_vocab is not None and file_vocab > vocab_size:
            raise InputError(
                f"{path} was encoded with a vocabulary of {file_vocab} tokens, but the model "
                f"has vocab_size={vocab_size}; encode it with the model's tokenizer"
            )
        # a sweep opens the same file for every run: scan each version of a file once
        st = path.stat()
        key = (str(path.resolve()), st.st_size, st.st_mtime_ns, vocab_size)
        if key not in _IDS_CHECKED:
            check_token_ids(data, vocab_size, path)
            _IDS_CHECKED.add(key)
    return data


def check_token_ids(
    ids: np.ndarray,
    vocab_size: int,
    where: str | os.PathLike = "token ids",
    *,
    chunk: int = _CHECK_CHUNK,
) -> None:
    """Raise `InputError` unless every (unsigned) id is below ``vocab_size``: a vectorised
    max over the whole array, ``chunk`` ids at a time (a memmap's memory stays flat)."""
    for start in range(0, len(ids), chunk):
        chunk_ids = ids[start : start + chunk]
        top = int(chunk_ids.max())
        if top >= vocab_size:
            at = start + int(np.argmax(chunk_ids >= vocab_size))
            raise InputError(
                f"{where}: token id {int(ids[at])} at position {at:,} is >= vocab_size="
                f"{vocab_size}; was it encoded with another tokenizer?"
            )


def _read_meta(side: Path) -> tuple[np.dtype, int, int | None]:
    """(dtype, num_tokens, vocab_size or None) from a sidecar, every field checked."""
    meta = read_json(side, "token-file sidecar")
    if not isinstance(meta, dict):
        raise InputError(f"{side}: expected a JSON object with dtype and num_tokens")
    for key in ("dtype", "num_tokens"):
        if key not in meta:
            raise InputError(f"{side}: missing field {key!r}")
    try:
        dtype = np.dtype(meta["dtype"])
    except (TypeError, ValueError):
        dtype = None
    if dtype is None or dtype.kind != "u" or dtype.byteorder == ">":
        raise InputError(
            f"{side}: dtype {meta['dtype']!r} is not a little-endian unsigned integer type "
            "(token files hold <u2 or <u4 ids)"
        )
    counts = {k: meta.get(k) for k in ("num_tokens", "vocab_size")}
    for key, value in counts.items():
        if value is not None and (type(value) is not int or value < 0):
            raise InputError(f"{side}: {key} must be a non-negative integer, got {value!r}")
    return dtype, counts["num_tokens"], counts["vocab_size"]


def token_file_vocab_size(path: str | os.PathLike) -> int | None:
    """The vocabulary size a token file's sidecar records (None when it records none)."""
    return _read_meta(_sidecar(path))[2]
