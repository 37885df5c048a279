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
    "sft": ("cs336_alignment.commands.sft", "supervised fine-tuning on prompt/response pairs"),
    "expert-iteration": (
        "cs336_alignment.commands.expert_iteration",
        "sample, keep the correct answers, fine-tune on them, repeat",
    ),
    "grpo": ("cs336_alignment.commands.grpo", "GRPO with the r1_zero math reward"),
    "dpo": ("cs336_alignment.commands.dpo", "DPO on preference pairs"),
    "demo": (
        "cs336_alignment.commands.demo",
        "pretrain -> SFT -> GRPO a small model on generated arithmetic problems (offline)",
    ),
    "about": ("cs336_common.about", "version, summary and status of this package"),
}


def main(argv: Sequence[str] | None = None) -> int:
    return run_cli("cs336-alignment", __doc__, COMMANDS, argv)


if __name__ == "__main__":
    raise SystemExit(main())
