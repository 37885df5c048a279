"""Harmful-content classifiers: NSFW and toxic speech.

With the Dolma Jigsaw fastText models (`cs336-data models download`, or paths in
$CS336_NSFW_MODEL / $CS336_TOXIC_MODEL) these are the course's classifiers. Offline, both
fall back to alt-profanity-check's linear SVM (a dependency; trained by its authors on
human-labelled offensive/clean text), whose probability of "offensive" is thresholded at
0.5. Its accuracy on text it was not trained on is in the README."""

from __future__ import annotations

import functools
import os

from cs336_data import fasttext_model

NSFW_ENV = "CS336_NSFW_MODEL"
TOXIC_ENV = "CS336_TOXIC_MODEL"


@functools.cache
def _profanity_model():
    # Imported lazily: it loads scikit-learn and two pickles (~0.5 s).
    import warnings

    with warnings.catch_warnings():  # pickles from an older scikit-learn: version warning
        warnings.simplefilter("ignore")
        from profanity_check import predict_prob
    return predict_prob


def offensive_probability(text: str) -> float:
    """alt-profanity-check's probability that `text` is offensive."""
    return float(_profanity_model()([" ".join(text.split())])[0])


def _classify(text: str, model_path: str | None, env: str, positive: str, negative: str):
    path = model_path or os.environ.get(env)
    if path:
        label, prob = fasttext_model.predict(fasttext_model.load(path), text)
        return label, prob
    p = offensive_probability(text)
    return (positive, p) if p >= 0.5 else (negative, 1.0 - p)


def classify_nsfw(text: str, model_path: str | None = None) -> tuple[str, float]:
    """("nsfw" | "non-nsfw", confidence of that label)."""
    return _classify(text, model_path, NSFW_ENV, "nsfw", "non-nsfw")


def classify_toxic_speech(text: str, model_path: str | None = None) -> tuple[str, float]:
    """("toxic" | "non-toxic", confidence of that label)."""
    return _classify(text, model_path, TOXIC_ENV, "toxic", "non-toxic")
