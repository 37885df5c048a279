"""Checkpoints: model + optimizer state + iteration (+ anything else the trainer needs)
in one ``torch.save`` file, written atomically and read with ``weights_only=True``."""

from __future__ import annotations

import os
from typing import IO, Any

import torch
from torch import nn

from cs336_common.io import atomic_path

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
    """Write ``model``/``optimizer`` state and ``iteration`` to a path (atomically: a crash
    leaves the previous file intact) or a binary file object. ``extra`` holds other plain
    data (tensors, numbers, strings, lists, dicts) returned by `read_checkpoint`."""
    payload = {
        "model": _clean_keys(model.state_dict()),
        "optimizer": None if optimizer is None else optimizer.state_dict(),
        "iteration": int(iteration),
        "extra": extra or {},
    }
    if isinstance(out, str | os.PathLike):
        with atomic_path(out) as tmp:
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
