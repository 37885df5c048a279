"""`cs336-basics`: tokenizer, Transformer LM training and generation."""

from __future__ import annotations

from collections.abc import Sequence

from cs336_common.cli import run_cli

COMMANDS = {
    "quickstart": (
        "cs336_basics.commands.quickstart",
        "the main job: tokenizer + small LM trained end to end on shipped text",
    ),
    "train": (
        "cs336_basics.commands.train",
        "train a Transformer LM from a config file (TOML/YAML) with --set overrides",
    ),
    "plot": (
        "cs336_basics.commands.plot",
        "learning curves (loss vs step and wall-clock) of one or more runs, as a PNG",
    ),
    "data": (
        "cs336_basics.commands.download",
        "download the TinyStories / OpenWebText text files (needs internet)",
    ),
    "tokenizer": (
        "cs336_basics.commands.tokenizer",
        "train a byte-level BPE tokenizer (train) or encode a text file into token ids (encode)",
    ),
    "generate": (
        "cs336_basics.commands.generate",
        "sample continuations of prompts from a trained run (temperature, top-p, KV cache)",
    ),
    "model-info": (
        "cs336_basics.commands.model_info",
        "parameters, memory and FLOPs per component of Transformer LM shapes (GPT-2 by default)",
    ),
}


def main(argv: Sequence[str] | None = None) -> int:
    return run_cli("cs336-basics", __doc__, COMMANDS, argv)


if __name__ == "__main__":
    raise SystemExit(main())
