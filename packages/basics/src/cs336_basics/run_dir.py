"""The layout of a training run's directory:

config.json                   resolved TrainConfig (incl. the model section)
metrics.jsonl                 one JSON object per logged step
checkpoints/step_XXXXXXXX.pt  model, optimizer, RNG and clock state
checkpoints/latest            name of the newest checkpoint
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from cs336_common.io import write_text_atomic


@dataclass(frozen=True)
class RunDir:
    path: Path

    def __init__(self, path: str | os.PathLike):
        object.__setattr__(self, "path", Path(path))

    @property
    def config(self) -> Path:
        return self.path / "config.json"

    @property
    def metrics(self) -> Path:
        return self.path / "metrics.jsonl"

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    def checkpoint(self, step: int) -> Path:
        return self.checkpoints / f"step_{step:08d}.pt"

    def all_checkpoints(self) -> list[Path]:
        return sorted(self.checkpoints.glob("step_*.pt"))

    def latest_checkpoint(self) -> Path | None:
        """The checkpoint the ``latest`` pointer names, else the highest step on disk."""
        pointer = self.checkpoints / "latest"
        if pointer.is_file():
            path = self.checkpoints / pointer.read_text(encoding="utf-8").strip()
            if path.is_file():
                return path
        found = self.all_checkpoints()
        return found[-1] if found else None

    def set_latest(self, checkpoint: Path) -> None:
        write_text_atomic(self.checkpoints / "latest", checkpoint.name + "\n")

    def read_metrics(self) -> list[dict]:
        if not self.metrics.is_file():
            return []
        lines = self.metrics.read_text(encoding="utf-8").splitlines()
        return [json.loads(line) for line in lines if line.strip()]
