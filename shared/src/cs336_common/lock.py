"""An exclusive lock on a directory, so two processes never write one run.

The lock is an advisory ``flock`` on ``<dir>/.lock``: the kernel releases it when the
holder exits in any way (including SIGKILL or a crash), so a stale lock file never
blocks the next run. The file records the holder (pid, host, command, start time) for
the error message the second process gets.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import socket
import sys
from collections.abc import Iterator
from pathlib import Path

from cs336_common.errors import UserError

try:
    import fcntl
except ImportError:  # Windows: no flock; the lock is then not enforced
    fcntl = None

LOCK_NAME = ".lock"


class DirectoryLocked(UserError):
    """Another process holds the directory's lock."""


@contextlib.contextmanager
def locked_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Create ``path`` if needed and hold its lock for the body; raise `DirectoryLocked`
    (naming the holder) at once if another process holds it."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    lock = path / LOCK_NAME
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise DirectoryLocked(
                    f"{path} is in use by {_holder(lock)}; wait for it to finish or stop it"
                ) from None
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps(_me()).encode())
        yield path
    finally:
        os.close(fd)  # releases the flock


def _me() -> dict:
    return dict(
        pid=os.getpid(),
        host=socket.gethostname(),
        command=" ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        started=datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
    )


def _holder(lock: Path) -> str:
    try:
        d = json.loads(lock.read_text(encoding="utf-8"))
        return f"process {d['pid']} on {d['host']} ({d['command']}, started {d['started']})"
    except (OSError, ValueError, KeyError, TypeError):
        return "another process"
