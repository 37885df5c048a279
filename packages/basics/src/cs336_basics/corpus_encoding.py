"""Encode a large UTF-8 text file into a token file (`cs336_common.train.token_file`), in
parallel over byte ranges that tokenize independently (`cs336_basics.text_chunks`)."""

from __future__ import annotations

import os

import numpy as np

from cs336_basics.text_chunks import map_chunks, plan_chunks, read_text
from cs336_common.checks import check_output
from cs336_common.io import atomic_path
from cs336_common.tokenizer import Tokenizer
from cs336_common.train.token_file import token_dtype, write_token_file_meta


def encode_file(
    tokenizer: Tokenizer,
    input_path: str | os.PathLike,
    out_path: str | os.PathLike,
    num_workers: int | None = None,
    progress: bool = False,
    chunk_bytes: int | None = None,
) -> int:
    """Encode `input_path` into the token file `out_path` (+ its `.json` sidecar) with
    `num_workers` processes (default: one per CPU), in ranges of about `chunk_bytes`
    (default: 4-16 MB, about four per worker); return the number of tokens.

    The ids equal `tokenizer.encode(whole_text)`. The output appears atomically: an
    error (e.g. invalid UTF-8, reported with its byte offset) leaves no partial file,
    and an output that is the input is refused before anything is read.
    """
    for out in (out_path, f"{os.fspath(out_path)}.json"):
        check_output(out, inputs=[input_path], flag="output")
    plan = plan_chunks(input_path, tokenizer.special_tokens, num_workers, chunk_bytes)
    num_tokens = 0
    with atomic_path(out_path) as tmp, open(tmp, "wb") as f:
        for ids in map_chunks(
            _encode_chunk,
            plan.path,
            plan.ranges,
            num_workers=plan.workers,
            progress=progress,
            desc="encoding",
            state=tokenizer,
        ):
            f.write(ids.tobytes())
            num_tokens += len(ids)
    write_token_file_meta(out_path, tokenizer.vocab_size, num_tokens)
    return num_tokens


def _encode_chunk(tokenizer: Tokenizer, task: tuple[str, int, int]) -> np.ndarray:
    ids = tokenizer.encode(read_text(*task))
    return np.array(ids, dtype=token_dtype(tokenizer.vocab_size))
