"""Checkpoints: model + optimizer state + iteration (+ anything else the trainer needs)
in one ``torch.save`` file, written atomically and read with ``weights_only=True``;
`CheckpointDir`, the folder of a run's numbered checkpoints."""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path
from typing import IO, Any

import torch
from torch import nn

from cs336_common.io import TEMP_GLOB, atomic_path, write_text_atomic

# torch.compile wraps a module in an OptimizedModule whose state-dict keys carry this prefix.
_COMPILED_PREFIX = "_orig_mod."


def save_checkpoint(
    model: nn.Module,
    optimizer: torch.optim.Optimizer | None,
    iteration: int,
    out: str | os.PathLike | IO[bytes],
    *,
    extra: dict[str, Any] | None = None,
) -> None:
    """Write ``model``/``optimizer`` state and ``iteration`` to a path (atomically and
    durably: a crash or power loss leaves the previous file intact) or a binary file
    object. ``extra`` holds other plain data (tensors, numbers, strings, lists, dicts)
    returned by `read_checkpoint`."""
    write_checkpoint(checkpoint_payload(model, optimizer, iteration, extra), out)


def checkpoint_payload(
    model: nn.Module,
    optimizer: torch.optim.Optimizer | None,
    iteration: int,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """What `save_checkpoint` writes. Separate because a sharded optimizer's
    ``state_dict()`` is collective: every rank builds the payload, one writes it."""
    return {
        "model": _clean_keys(model.state_dict()),
        "optimizer": None if optimizer is None else optimizer.state_dict(),
        "iteration": int(iteration),
        "extra": extra or {},
    }


def write_checkpoint(payload: dict[str, Any], out: str | os.PathLike | IO[bytes]) -> None:
    if isinstance(out, str | os.PathLike):
        with atomic_path(out, durable=True) as tmp:
            torch.save(payload, tmp)
    else:
        torch.save(payload, out)


def read_checkpoint(src: str | os.PathLike | IO[bytes]) -> dict[str, Any]:
    """The saved payload (``model``, ``optimizer``, ``iteration``, ``extra``), on CPU.
    ``weights_only=True``: loading a checkpoint never runs code stored in it."""
    return torch.load(src, map_location="cpu", weights_only=True)


def restore_checkpoint(
    payload: dict[str, Any], model: nn.Module, optimizer: torch.optim.Optimizer | None = None
) -> int:
    """Load a `read_checkpoint` payload into ``model`` (compiled or not) and ``optimizer``;
    return the iteration."""
    getattr(model, "_orig_mod", model).load_state_dict(_clean_keys(payload["model"]))
    if optimizer is not None:
        if payload["optimizer"] is None:
            raise ValueError("checkpoint has no optimizer state")
        optimizer.load_state_dict(payload["optimizer"])
    return payload["iteration"]


def load_checkpoint(
    src: str | os.PathLike | IO[bytes],
    model: nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
) -> int:
    """Restore ``model`` and ``optimizer`` from a `save_checkpoint` file; return the iteration."""
    return restore_checkpoint(read_checkpoint(src), model, optimizer)


def _clean_keys(state_dict: dict[str, Any]) -> dict[str, Any]:
    return {k.replace(_COMPILED_PREFIX, ""): v for k, v in state_dict.items()}


_NAME = re.compile(r"step_(\d{8,})\.pt")


class CheckpointDir:
    """A folder of numbered checkpoints ``step_XXXXXXXX.pt`` and a ``latest`` pointer.

    Saving is atomic and durable, removes the temporary files that killed writes of
    earlier sessions left behind, and keeps only the newest ``keep`` checkpoints.
    `load_latest` skips (and sets aside as ``*.corrupt``) checkpoints that do not load.
    The ``latest`` pointer may only name a checkpoint of this folder.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)

    def file(self, step: int) -> Path:
        return self.path / f"step_{step:08d}.pt"

    def all(self) -> list[Path]:
        """Every checkpoint, oldest first."""
        if not self.path.is_dir():
            return []
        found = [p for p in self.path.iterdir() if _NAME.fullmatch(p.name)]
        return sorted(found, key=step_of)

    def latest(self) -> Path | None:
        """The checkpoint ``latest`` names, else the highest step on disk."""
        pointer = self.path / "latest"
        if pointer.is_file():
            name = pointer.read_text(encoding="utf-8").strip()
            if not _NAME.fullmatch(name):
                raise ValueError(
                    f"{pointer} names {name!r}, which is not a checkpoint of this run "
                    f"(expected step_XXXXXXXX.pt inside {self.path}); fix or delete it"
                )
            if (self.path / name).is_file():
                return self.path / name
        found = self.all()
        return found[-1] if found else None

    def save(self, step: int, payload: dict[str, Any], keep: int = 0) -> Path:
        """Write ``payload`` as the checkpoint of ``step``, point ``latest`` at it, and
        delete all but the newest ``keep`` checkpoints (0: keep all)."""
        self.remove_orphans()
        path = self.file(step)
        write_checkpoint(payload, path)
        write_text_atomic(self.path / "latest", path.name + "\n", durable=True)
        if keep:
            for old in self.all()[:-keep]:
                old.unlink()
        return path

    def remove_orphans(self) -> list[Path]:
        """Delete temporary files of writes that never finished (a kill mid-save).
        Only call it while holding the run's lock: another writer's file looks the same."""
        if not self.path.is_dir():
            return []
        orphans = [*self.path.glob(TEMP_GLOB.format("step_*.pt")), *self.path.glob(".latest.*.tmp")]
        for p in orphans:
            p.unlink(missing_ok=True)
        return orphans

    def load_latest(self) -> tuple[Path, dict[str, Any]] | None:
        """The newest checkpoint that loads, as (path, payload); None when there is none.
        A checkpoint that fails to load is renamed ``<name>.corrupt`` with a warning on
        stderr, and the next older one is tried."""
        latest = self.latest()
        candidates = [p for p in self.all() if latest is None or step_of(p) <= step_of(latest)]
        for path in reversed(candidates):
            try:
                return path, read_checkpoint(path)
            except Exception as e:  # truncated zip, bad pickle, I/O error: all unusable
                aside = path.with_name(path.name + ".corrupt")
                os.replace(path, aside)
                print(
                    f"warning: checkpoint {path} does not load ({type(e).__name__}: "
                    f"{str(e).splitlines()[0] if str(e) else ''}); moved it to {aside.name} "
                    "and trying the previous one",
                    file=sys.stderr,
                )
        return None


def step_of(checkpoint: Path) -> int:
    """The step in a ``step_XXXXXXXX.pt`` file name."""
    match = _NAME.fullmatch(checkpoint.name)
    if match is None:
        raise ValueError(f"{checkpoint} is not named step_XXXXXXXX.pt")
    return int(match.group(1))
