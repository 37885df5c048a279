"""A trainer that does not train: the loss of a known law ``E + A/N^α + B/D^β`` with seeded
noise, after ``trainer_options["seconds"]`` of sleep. For exercising the service, the sweep
planner and the fits on machines without the compute
(``serve --trainer cs336_scaling.simulate:simulated_loss``); never confuse its answers with
measurements. ``trainer_options["n_scale"]`` scales the N the law sees (1/16: every model
learns like one 16 times smaller, so the optimum moves up), to put a profile's minimum
where a test needs it."""

from __future__ import annotations

import hashlib
import json
import time

import numpy as np

from cs336_scaling.settings import non_embedding_params, tokens_for

LAW = {"E": 1.69, "A": 406.4, "B": 410.7, "alpha": 0.34, "beta": 0.28}  # Hoffmann et al. 2022


def simulated_loss(config: dict, settings: dict, device: str | None = None) -> float:
    del device
    time.sleep(float(settings["trainer_options"].get("seconds", 0.0)))
    n = non_embedding_params(config) * float(settings["trainer_options"].get("n_scale", 1.0))
    d = max(tokens_for(config), 1)
    loss = LAW["E"] + LAW["A"] / n ** LAW["alpha"] + LAW["B"] / d ** LAW["beta"]
    # Learning rate off 1e-3 costs a little, as it would; noise is seeded by the config.
    loss *= 1 + 0.05 * np.log10(1e-3 / config["learning_rate"]) ** 2
    seed = int(hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:8], 16)
    return float(loss * np.exp(np.random.default_rng(seed).normal(0, 0.005)))
