"""Loading fastText models once per process, and predicting one label with its probability."""

from __future__ import annotations

import functools
import os

import fasttext

# fastText prints a warning on every load_model of a supervised model; it says nothing useful.
fasttext.FastText.eprint = lambda *args, **kwargs: None


@functools.cache
def load(path: str):
    if not os.path.isfile(path):
        raise FileNotFoundError(f"fastText model not found: {path}")
    return fasttext.load_model(path)


def predict(model, text: str) -> tuple[str, float]:
    """The top label (without `__label__`) and its probability, capped at 1 (fastText's
    softmax can return 1.00003)."""
    labels, probs = model.predict(" ".join(text.split()), k=1)
    return labels[0].removeprefix("__label__"), min(float(probs[0]), 1.0)
