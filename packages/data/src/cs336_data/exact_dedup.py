"""Exact line deduplication: keep only the lines that occur once in the whole collection."""

from __future__ import annotations

import hashlib
import os
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

from cs336_common.io import atomic_path


def line_key(line: str) -> int:
    """A 64-bit hash stands for the line, so memory does not grow with line length; it
    is stable across processes (unlike hash()), so shards count consistently. Two lines
    of a billion collide with probability ~3%, and then only one line is lost."""
    raw = hashlib.blake2b(line.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(raw, "little")


def count_lines(paths: Iterable[str | os.PathLike]) -> Counter:
    counts: Counter = Counter()
    for path in paths:
        with open(path, encoding="utf-8", errors="surrogateescape", newline="") as f:
            counts.update(line_key(line.rstrip("\r\n")) for line in f)
    return counts


def exact_line_deduplication(input_files: list[os.PathLike], output_directory: os.PathLike) -> None:
    """Pass 1 counts every line's hash across all files; pass 2 rewrites each file under
    `output_directory` (same name) with the lines whose count is exactly 1."""
    paths = [Path(p) for p in input_files]
    names = [p.name for p in paths]
    if len(set(names)) != len(names):
        raise ValueError("input files must have distinct names (outputs keep them)")
    out_dir = Path(output_directory)
    if any(p.resolve().parent == out_dir.resolve() for p in paths):
        raise ValueError(f"output directory {out_dir} holds the inputs; it would overwrite them")
    counts = count_lines(paths)
    for path in paths:
        with (
            open(path, encoding="utf-8", errors="surrogateescape", newline="") as src,
            atomic_path(out_dir / path.name) as tmp,
            open(tmp, "w", encoding="utf-8", errors="surrogateescape", newline="") as dst,
        ):
            dst.writelines(line for line in src if counts[line_key(line.rstrip("\r\n"))] == 1)
