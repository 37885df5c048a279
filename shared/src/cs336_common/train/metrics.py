"""Training metrics: model FLOPs utilisation, the metrics JSONL file, and optional
Weights & Biases logging (used only when installed and enabled)."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any


def model_flops_utilization(
    tokens_per_s: float, forward_flops_per_token: float, peak: float | None
) -> float | None:
    """Achieved training FLOP/s over the peak; a training step costs about three forward
    passes (the backward pass computes two matmuls per forward matmul)."""
    if peak is None:
        return None
    return 3 * forward_flops_per_token * tokens_per_s / peak


class MetricsLog:
    """Appends one JSON object per row to ``path`` (flushed at once, so a crash loses
    nothing logged), mirrored to a wandb run when one is given."""

    def __init__(self, path: Path, wandb_run=None):
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file = path.open("a", encoding="utf-8")
        self._wandb = wandb_run

    def write(self, row: dict[str, Any]) -> None:
        self._file.write(json.dumps(row) + "\n")
        self._file.flush()
        if self._wandb is not None:
            self._wandb.log({k: v for k, v in row.items() if v is not None}, step=row["step"])

    def close(self) -> None:
        self._file.close()
        if self._wandb is not None:
            self._wandb.finish()


def start_wandb(project: str, name: str, config: dict[str, Any], run_dir: Path):
    """A wandb run, or None (with a warning) when wandb is not installed."""
    try:
        import wandb
    except ImportError:
        warnings.warn(
            "wandb = true, but wandb is not installed (pip install wandb); "
            "logging to metrics.jsonl only",
            stacklevel=2,
        )
        return None
    return wandb.init(project=project, name=name, config=config, dir=str(run_dir))
