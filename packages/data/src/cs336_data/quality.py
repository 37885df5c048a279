"""Quality classifier: fastText, "wiki" (reference-like prose) vs "cc" (typical crawl text).

The shipped default (models/quality.ftz) is trained by `benchmarks/train_quality.py`;
its training data and held-out accuracy are in the README. `train_quality_model` (the
`cs336-data quality train` command) trains one from any two files of labelled text."""

from __future__ import annotations

import importlib.resources
import os
import tempfile
from pathlib import Path

from cs336_common.io import atomic_path
from cs336_data import fasttext_model

ENV_VAR = "CS336_QUALITY_MODEL"
LABELS = ("wiki", "cc")
# fastText fills its input matrix with random numbers in 10 blocks, one per training thread
# (DenseMatrix::uniform); with fewer threads the other blocks keep what the allocator
# returned: zeros in a fresh process, old data (NaN included) in a long-lived one, where
# training then failed with "Encountered NaN." at any learning rate. 10 threads fill all.
THREADS = 10


def default_model_path() -> str:
    if os.environ.get(ENV_VAR):
        return os.environ[ENV_VAR]
    return str(importlib.resources.files("cs336_data") / "models" / "quality.ftz")


def classify_quality(text: str, model_path: str | None = None) -> tuple[str, float]:
    """("wiki" | "cc", probability of that label)."""
    return fasttext_model.predict(fasttext_model.load(model_path or default_model_path()), text)


def _lines(path: str | os.PathLike) -> list[str]:
    """One training example per non-empty line (newlines inside a document are spaces)."""
    text = Path(path).read_text(encoding="utf-8", errors="replace")
    return [" ".join(line.split()) for line in text.splitlines() if line.strip()]


def train_quality_model(
    positives: str | os.PathLike,
    negatives: str | os.PathLike,
    out: str | os.PathLike,
    *,
    epoch: int = 10,
    lr: float = 0.5,
    word_ngrams: int = 2,
    dim: int = 32,
    quantize: bool = True,
    seed: int = 0,
) -> int:
    """Train a wiki/cc fastText model from a file of positives and one of negatives (one
    document per line) and write it to `out`; returns the number of training examples."""
    import random

    import fasttext

    examples = []
    for path, label in ((positives, "wiki"), (negatives, "cc")):
        lines = _lines(path)
        if not lines:  # fastText would learn one label and call everything that
            raise ValueError(f"{path}: no text (one document a line); need both labels")
        examples += [f"__label__{label} {t}" for t in lines]
    random.Random(seed).shuffle(examples)
    with tempfile.TemporaryDirectory() as tmp:
        train = Path(tmp) / "train.txt"
        train.write_text("\n".join(examples) + "\n", encoding="utf-8")
        model = fasttext.train_supervised(
            str(train), epoch=epoch, lr=lr, wordNgrams=word_ngrams, dim=dim, seed=seed,
            thread=THREADS, verbose=0, minCount=2, bucket=200_000,
        )  # fmt: skip
        if quantize:
            model.quantize(input=str(train), qnorm=True, retrain=False, cutoff=50_000)
        with atomic_path(out) as dst:
            model.save_model(str(dst))
    return len(examples)
