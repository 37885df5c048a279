"""Tokenizing document shards into one token file (uint16 ids for GPT-2's vocabulary).

Each shard is encoded on its own (a document's ids, then <|endoftext|>) into
`_work/<shard>.bin`; the shards are then concatenated in input order into the output,
whose JSON sidecar names the dtype (cs336_common.train.token_file's format)."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path

import numpy as np

from cs336_common.io import atomic_path
from cs336_data.documents import read_documents

EOT = "<|endoftext|>"


def load_tokenizer(spec: str):
    """ "gpt2" (the vocabulary cs336_common ships) or a directory/tokenizer.json saved by
    `Tokenizer.save` (for instance by `cs336-basics tokenizer train`)."""
    from cs336_common import Tokenizer

    if spec == "gpt2":
        assets = files("cs336_common") / "assets"
        return Tokenizer.from_files(assets / "gpt2_vocab.json", assets / "gpt2_merges.txt", [EOT])
    return Tokenizer.load(spec)


@dataclass
class TokenizeTask:
    input: str
    output: str  # this shard's token file
    tokenizer: str

    @property
    def name(self) -> str:
        return Path(self.input).name


def tokens_done(task: TokenizeTask) -> bool:
    return Path(f"{task.output}.json").is_file()


def tokenize_task(task: TokenizeTask) -> None:
    from cs336_common.train.token_file import token_dtype, write_token_file_meta

    tok = load_tokenizer(task.tokenizer)
    if EOT not in tok.special_tokens:
        raise ValueError(f"tokenizer {task.tokenizer} has no {EOT} token to end documents")
    eot, dtype = tok.token_id(EOT), token_dtype(tok.vocab_size)
    n = 0
    with atomic_path(task.output) as tmp, open(tmp, "wb") as f:
        for doc in read_documents(task.input):
            ids = np.asarray([*tok.encode(doc["text"]), eot], dtype=dtype)
            f.write(ids.tobytes())
            n += len(ids)
    write_token_file_meta(task.output, tok.vocab_size, n)


def concatenate(tasks: list[TokenizeTask], out: Path, tokenizer: str) -> int:
    """The shard token files, in order, as one token file; returns its token count."""
    from cs336_common.train.token_file import open_token_file, write_token_file_meta

    total = 0
    with atomic_path(out) as tmp, open(tmp, "wb") as dst:
        for task in tasks:
            total += len(open_token_file(task.output))
            with open(task.output, "rb") as src:
                shutil.copyfileobj(src, dst, 1 << 22)
    write_token_file_meta(out, load_tokenizer(tokenizer).vocab_size, total)
    return total
