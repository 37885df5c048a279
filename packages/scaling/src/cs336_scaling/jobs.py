"""What one submitit job runs: the configured trainer on one configuration."""

from __future__ import annotations

import importlib


def run_job(config: dict, settings: dict, slot: str | None) -> float:
    """Import ``settings["trainer"]`` (``module:function``) and return its final loss.
    ``slot`` names the runner's device slot; the trainer gets ``cuda:i`` or None (pick)."""
    device = slot if slot and slot.startswith("cuda:") else None
    module, _, name = settings["trainer"].partition(":")
    trainer = getattr(importlib.import_module(module), name)
    return float(trainer(config, settings, device))
