"""Argument and error helpers shared by the commands."""

from __future__ import annotations

import argparse
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
    from cs336_scaling.runs import default_runs_path

    return InputError(f"{path or default_runs_path()}: {error}")


def check_outputs(flag: str, paths, runs: Path | None, suffixes=None) -> None:
    """Fail before the work, not after it, when an output cannot be written or would
    replace the runs file (default: the shipped one)."""
    from cs336_common.checks import check_output
    from cs336_scaling.runs import default_runs_path

    for path in paths:
        check_output(path, inputs=[runs or default_runs_path()], flag=flag, suffixes=suffixes)


def url(text: str) -> str:
    """argparse type of ``--url``: an http(s) address."""
    if not text.startswith(("http://", "https://")):
        raise argparse.ArgumentTypeError(f"expected an http:// or https:// address, got {text!r}")
    return text


def port(text: str) -> int:
    """argparse type of ``--port``: 0 (any free port) to 65535."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"expected a port number in [0, 65535], got {text!r}")
    return value


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
