"""Export alt-profanity-check's model (MIT licence) to src/cs336_data/models/offensive.npz.

Its model is a TF-IDF vectorizer and five sigmoid-calibrated linear SVMs (scikit-learn
pickles, trained by its authors on human-labelled offensive/clean text). Loading it means
importing scikit-learn and SciPy, 2-10 s per worker process; the exported arrays need
numpy only. tests/test_filters.py checks that cs336_data.harmful gives the same
probabilities as profanity_check.predict_prob.

    uv run python packages/data/benchmarks/export_offensive_model.py
"""

from __future__ import annotations

import warnings
from importlib.resources import files
from pathlib import Path

import numpy as np

OUT = Path(__file__).resolve().parents[1] / "src/cs336_data/models/offensive.npz"


def main() -> None:
    import joblib

    data = files("profanity_check") / "data"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pickled by an older scikit-learn
        vec = joblib.load(data / "vectorizer.joblib")
        model = joblib.load(data / "model.joblib")
    vocab = sorted(vec.vocabulary_, key=vec.vocabulary_.get)
    calibrated = model.calibrated_classifiers_
    np.savez_compressed(
        OUT,
        vocab=np.array("\n".join(vocab)),
        idf=vec.idf_.astype(np.float32),
        coef=np.stack([c.estimator.coef_[0] for c in calibrated]).astype(np.float32),
        intercept=np.array([c.estimator.intercept_[0] for c in calibrated]),
        sigmoid_a=np.array([c.calibrators[0].a_ for c in calibrated]),
        sigmoid_b=np.array([c.calibrators[0].b_ for c in calibrated]),
        token_pattern=np.array(vec.token_pattern),
    )
    print(f"{OUT} ({OUT.stat().st_size / 1e3:.0f} KB): {len(vocab)} words, {len(calibrated)} SVMs")


if __name__ == "__main__":
    main()
