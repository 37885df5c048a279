"""Argument and error helpers shared by the commands."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from cs336_common.errors import InputError, UserError


def add_runs_argument(parser):
    parser.add_argument(
        "runs",
        nargs="?",
        type=Path,
        default=None,
        help="runs JSON (default: the shipped isoflops_curves.json)",
    )


def interval_level(text: str) -> float:
    """argparse type of ``--level``: a number strictly between 0 and 1."""
    try:
        value = float(text)
    except ValueError:
        value = None
    if value is None or not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1), got {text!r}")
    return value


def fit_error(path, error: ValueError) -> InputError:
    """A fit's refusal (too few runs, ...) as a one-line error naming the runs file."""
    return InputError(f"{path or 'runs'}: {error}")


def check_out_dir(path: Path) -> None:
    """Fail before the work, not after it, when outputs cannot be written."""
    if path.exists() and not path.is_dir():
        raise UserError(f"--out-dir {path}: exists and is not a folder")
    probe = path if path.exists() else next((p for p in path.parents if p.exists()), Path("."))
    if not os.access(probe, os.W_OK):
        raise UserError(f"--out-dir {path}: not writable")


def add_state_dir(parser):
    parser.add_argument(
        "--state-dir",
        type=Path,
        default=Path("scaling-service"),
        help="the service's folder: service.db, job logs (default: ./scaling-service)",
    )


def open_state(state_dir: Path, exclusive: bool):
    """Open the state folder's store; ``exclusive``: hold its server lock (one server per
    folder). Returns ``(lock file, Store)``; close the lock file to release."""
    import fcntl

    from cs336_scaling.store import Store

    if state_dir.exists() and not state_dir.is_dir():
        raise UserError(f"--state-dir {state_dir}: exists and is not a folder")
    try:
        state_dir.mkdir(parents=True, exist_ok=True)
        lock = open(state_dir / "server.lock", "a+")  # noqa: SIM115 -- held while serving
    except OSError as e:
        raise UserError(f"--state-dir {state_dir}: {e.strerror or e}") from None
    if exclusive:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.close()
            raise UserError(f"--state-dir {state_dir}: another server is using it") from None
    try:
        return lock, Store(state_dir / "service.db")
    except Exception as e:
        lock.close()
        raise UserError(f"{state_dir / 'service.db'}: cannot open the store ({e})") from None
