"""Runs as the fits read them: ``{"parameters", "compute_budget", "final_loss"}`` records.

The course's ``isoflops_curves.json`` (Stanford CS336 Spring 2025, assignment 3, copied
from the course handout) ships as package data and is the default input.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from cs336_common.errors import InputError

FIELDS = ("parameters", "compute_budget", "final_loss")


@dataclass(frozen=True)
class Runs:
    """Columns of a list of runs as float64 arrays (``tokens`` is ``C / (6 N)``)."""

    parameters: np.ndarray
    compute_budget: np.ndarray
    final_loss: np.ndarray

    @property
    def tokens(self) -> np.ndarray:
        return self.compute_budget / (6.0 * self.parameters)

    def __len__(self) -> int:
        return len(self.parameters)

    def take(self, index: np.ndarray) -> Runs:
        return Runs(self.parameters[index], self.compute_budget[index], self.final_loss[index])


def default_runs_path() -> Path:
    return Path(str(resources.files("cs336_scaling") / "data" / "isoflops_curves.json"))


def as_runs(records, source: str = "runs") -> Runs:
    """Validate a list of run records (dicts) or pass a `Runs` through; one-line
    `InputError`s (ValueErrors) naming ``source``, the run and the field."""
    if isinstance(records, Runs):
        return records
    if not isinstance(records, list) or not records:
        raise InputError(f"{source}: expected a non-empty JSON list of runs")
    cols = {name: [] for name in FIELDS}
    for i, rec in enumerate(records):
        if not isinstance(rec, dict):
            raise InputError(f"{source}: run {i} is not an object")
        for name in FIELDS:
            value = rec.get(name)
            ok = isinstance(value, int | float) and not isinstance(value, bool)
            if not ok or not math.isfinite(value) or value <= 0:
                raise InputError(
                    f"{source}: run {i} field {name!r} must be a number > 0, got {value!r}"
                )
            cols[name].append(float(value))
    return Runs(*(np.asarray(cols[name], dtype=np.float64) for name in FIELDS))


def load_runs(path: str | Path | None = None) -> Runs:
    """Read a runs JSON file (default: the shipped ``isoflops_curves.json``)."""
    path = Path(path) if path is not None else default_runs_path()
    return as_runs(read_run_records(path), str(path))


def read_run_records(path: str | Path | None = None) -> list:
    """The JSON of a runs file as it is (records may carry more fields than the fits read,
    e.g. a sweep's batch_size and learning_rate); `as_runs` validates it."""
    path = Path(path) if path is not None else default_runs_path()
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"{path}: file not found") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise InputError(f"{path}: not a readable JSON file ({e})") from None
