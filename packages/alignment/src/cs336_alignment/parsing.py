"""Answer extraction for the evaluation sets: MMLU letters and GSM8K numbers."""

from __future__ import annotations

import re
from typing import Any

_MMLU_RE = re.compile(r"answer is\s*:?\s*\(?([ABCD])\b\)?")
# numbers like 1,234.5, -3, .5 (commas as thousands separators are dropped)
_NUMBER_RE = re.compile(r"-?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|-?\.\d+")


def parse_mmlu_response(mmlu_example: dict[str, Any], model_output: str) -> str | None:
    """The letter after "The correct answer is" (the format the prompt asks for; the
    last such statement wins), or None when the output does not state one."""
    matches = _MMLU_RE.findall(model_output)
    return matches[-1] if matches else None


def parse_gsm8k_response(model_output: str) -> str | None:
    """The last number in the output, thousands separators removed, or None."""
    matches = _NUMBER_RE.findall(model_output)
    if not matches:
        return None
    return matches[-1].replace(",", "")
