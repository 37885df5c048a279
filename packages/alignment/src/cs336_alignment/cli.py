"""`cs336-alignment`: SFT, expert iteration, GRPO and DPO for language models (CS336
assignment 5), for Hugging Face causal LMs and the project's own `TransformerLM`."""

from __future__ import annotations

from collections.abc import Sequence

from cs336_common.cli import run_cli

COMMANDS = {
    "eval": (
        "cs336_alignment.commands.eval",
        "score a model on GSM8K, MATH, MMLU, AlpacaEval, SST",
    ),
    "export": (
        "cs336_alignment.commands.export",
        "convert our model directory to a Hugging Face LlamaForCausalLM one, or back",
    ),
    "about": ("cs336_common.about", "version, summary and status of this package"),
}


def main(argv: Sequence[str] | None = None) -> int:
    return run_cli("cs336-alignment", __doc__, COMMANDS, argv)


if __name__ == "__main__":
    raise SystemExit(main())
