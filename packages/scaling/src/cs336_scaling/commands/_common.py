"""Argument and error helpers shared by the commands."""

from __future__ import annotations

import os
from pathlib import Path


def add_runs_argument(parser):
    parser.add_argument(
        "runs",
        nargs="?",
        type=Path,
        default=None,
        help="runs JSON (default: the shipped isoflops_curves.json)",
    )


def load_runs_or_exit(path):
    from cs336_scaling.runs import load_runs

    try:
        return load_runs(path)
    except ValueError as e:
        raise SystemExit(str(e)) from None


def check_out_dir(path: Path) -> None:
    """Fail before the work, not after it, when outputs cannot be written."""
    if path.exists() and not path.is_dir():
        raise SystemExit(f"--out-dir {path}: exists and is not a folder")
    probe = path if path.exists() else next((p for p in path.parents if p.exists()), Path("."))
    if not os.access(probe, os.W_OK):
        raise SystemExit(f"--out-dir {path}: not writable")
