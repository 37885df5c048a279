"""Harmful-content classifiers: NSFW and toxic speech.

With the Dolma Jigsaw fastText models (`cs336-data models download`, or paths in
$CS336_NSFW_MODEL / $CS336_TOXIC_MODEL) these are the course's classifiers. Offline, both
use alt-profanity-check's model (trained by its authors on human-labelled offensive and
clean text), exported to models/offensive.npz by benchmarks/export_offensive_model.py and
evaluated here with numpy alone: the probability of "offensive", thresholded at 0.5."""

from __future__ import annotations

import functools
import os
import re
from importlib.resources import files

import numpy as np

from cs336_data import fasttext_model

NSFW_ENV = "CS336_NSFW_MODEL"
TOXIC_ENV = "CS336_TOXIC_MODEL"


class OffensiveModel:
    """TF-IDF (l2-normalised) -> five linear SVMs -> sigmoid calibration -> mean, exactly
    as scikit-learn's TfidfVectorizer and CalibratedClassifierCV compute it."""

    def __init__(self, path):
        z = np.load(path)
        self.index = {w: i for i, w in enumerate(str(z["vocab"]).split("\n"))}
        self.token = re.compile(str(z["token_pattern"]))
        self.idf = z["idf"].astype(np.float64)
        self.coef = z["coef"].astype(np.float64)
        self.intercept, self.a, self.b = z["intercept"], z["sigmoid_a"], z["sigmoid_b"]

    def probability(self, text: str) -> float:
        ids = [i for w in self.token.findall(text.lower()) if (i := self.index.get(w)) is not None]
        if not ids:  # no known word: every SVM sees the zero vector
            x_ids, x = np.zeros(0, np.int64), np.zeros(0)
        else:
            x_ids, counts = np.unique(ids, return_counts=True)
            x = counts * self.idf[x_ids]
            x /= np.linalg.norm(x)
        f = self.coef[:, x_ids] @ x + self.intercept
        return float(np.mean(1.0 / (1.0 + np.exp(self.a * f + self.b))))


@functools.cache
def _offensive_model() -> OffensiveModel:
    return OffensiveModel(files("cs336_data") / "models" / "offensive.npz")


@functools.lru_cache(maxsize=1)  # offline, NSFW and toxic both ask it about the same text
def offensive_probability(text: str) -> float:
    """alt-profanity-check's probability that `text` is offensive."""
    return _offensive_model().probability(text)


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
