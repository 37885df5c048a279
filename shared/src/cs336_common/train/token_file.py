"""Token files: a flat little-endian array of token ids that `np.memmap` reads, plus a
JSON sidecar `<file>.json` naming its dtype, so a 10 GB corpus is never loaded whole."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from cs336_common.io import atomic_path, write_text_atomic


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


def open_token_file(path: str | os.PathLike) -> np.memmap:
    """Memory-map a token file read-only, checking it against its sidecar."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"token file not found: {path}")
    side = _sidecar(path)
    if not side.is_file():
        raise FileNotFoundError(
            f"{side} is missing: token files are written by `cs336-basics tokenizer encode`"
        )
    meta = json.loads(side.read_text(encoding="utf-8"))
    dtype = np.dtype(meta["dtype"])
    expected = int(meta["num_tokens"]) * dtype.itemsize
    if path.stat().st_size != expected:
        raise ValueError(
            f"{path}: {path.stat().st_size} bytes, but {side} says {meta['num_tokens']} tokens "
            f"of {dtype} ({expected} bytes); the file is truncated or from another run"
        )
    if expected == 0:
        return np.zeros(0, dtype=dtype)
    return np.memmap(path, dtype=dtype, mode="r")
