"""Tokenizing document shards into one token file (uint16 ids for GPT-2's vocabulary).

Each shard's documents are encoded (ids, then <|endoftext|>) into `_work_tokens/<shard>.bin`
(collectors.Tokens; in the pipeline the MinHash rewrite does it while writing); the shards
are then concatenated in input order into the output, whose JSON sidecar names the dtype
(cs336_common.train.token_file's format)."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path

from cs336_common.io import atomic_path

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
    collect: tuple

    @property
    def name(self) -> str:
        return Path(self.input).name


def tokens_done(task: TokenizeTask) -> bool:
    return Path(f"{task.output}.json").is_file()


def concatenate(parts: list[Path], out: Path, tokenizer: str) -> int:
    """The shard token files, in order, as one token file; returns its token count."""
    from cs336_common.train.token_file import open_token_file, write_token_file_meta

    total = 0
    with atomic_path(out) as tmp, open(tmp, "wb") as dst:
        for part in parts:
            total += len(open_token_file(part))
            with open(part, "rb") as src:
                shutil.copyfileobj(src, dst, 1 << 22)
    write_token_file_meta(out, load_tokenizer(tokenizer).vocab_size, total)
    return total
