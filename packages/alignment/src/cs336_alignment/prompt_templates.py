"""The course's prompt templates, shipped as package data (``prompts/*.prompt``):
``r1_zero``, ``question_only``, ``alpaca_sft`` and ``zero_shot_system_prompt``."""

from __future__ import annotations

import functools
from importlib import resources

PROMPT_NAMES = ("r1_zero", "question_only", "alpaca_sft", "zero_shot_system_prompt")


@functools.cache
def load_prompt(name: str) -> str:
    """The template text, with ``{question}`` / ``{instruction}`` / ``{response}`` slots."""
    if name not in PROMPT_NAMES:
        raise ValueError(f"unknown prompt {name!r}; known: {', '.join(PROMPT_NAMES)}")
    path = resources.files("cs336_alignment") / "prompts" / f"{name}.prompt"
    return path.read_text(encoding="utf-8")


def alpaca_prompt(instruction: str) -> str:
    """The Alpaca SFT template up to (and including) ``### Response:\\n``."""
    template = load_prompt("alpaca_sft")
    return template[: template.index("{response}")].format(instruction=instruction)
