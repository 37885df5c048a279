"""The layout of a training run's directory:

config.json                   resolved TrainConfig (incl. the model section)
metrics.jsonl                 one JSON object per logged step
history.jsonl                 one JSON object per session: start or resume, and what changed
tokenizer/tokenizer.json      a copy of the run's tokenizer (when the config names one)
checkpoints/step_XXXXXXXX.pt  model, optimizer, RNG and clock state
checkpoints/latest            name of the newest checkpoint
.lock                         held by the process training into the directory
"""

from __future__ import annotations

import datetime
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cs336_common.checks import parse_jsonl, read_json
from cs336_common.train.checkpoint import CheckpointDir


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
    def history(self) -> Path:
        return self.path / "history.jsonl"

    @property
    def tokenizer(self) -> Path:
        return self.path / "tokenizer"

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    def checkpoint(self, step: int) -> Path:
        return CheckpointDir(self.checkpoints).file(step)

    def all_checkpoints(self) -> list[Path]:
        return CheckpointDir(self.checkpoints).all()

    def latest_checkpoint(self) -> Path | None:
        """The checkpoint the ``latest`` pointer names, else the highest step on disk."""
        return CheckpointDir(self.checkpoints).latest()

    def read_config(self) -> dict[str, Any] | None:
        """config.json as a dict; None when the run has none yet."""
        if not self.config.is_file():
            return None
        return read_json(self.config, "run config")

    def read_metrics(self) -> list[dict]:
        """The logged rows, oldest first ([] before the first); a line that is not a JSON
        object is an `InputError` naming the file and line."""
        if not self.metrics.is_file():
            return []
        return parse_jsonl(self.metrics.read_bytes(), str(self.metrics))

    def append_history(self, step: int, changes: dict[str, list]) -> None:
        """Record a session: a start (step 0) or a resume at ``step`` with the settings
        it changed, ``{field: [old, new]}``."""
        row = dict(
            event="resume" if step else "start",
            step=step,
            time=datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
            changes=changes,
        )
        with self.history.open("a", encoding="utf-8") as f:
            f.write(json.dumps(row) + "\n")
