"""Crash-safe file writes: write beside the target, then rename over it."""

from __future__ import annotations

import contextlib
import os
import secrets
import sys
from collections.abc import Iterator
from pathlib import Path

# glob of the temporary files `atomic_path` creates for targets matching a glob
TEMP_GLOB = ".{}.*.tmp"


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, *, durable: bool = False) -> Iterator[Path]:
    """Yield a temporary path in the target's folder; on success rename it to `path`.

    A reader never sees a half-written file: either the old one or the new one. On an
    exception the temporary file is removed and `path` is left untouched. The temporary
    file is named ``.<name>.<random>.tmp`` (a crash can orphan it: see `TEMP_GLOB`).

    ``durable=True`` also survives power loss: the new file's data is fsynced before the
    rename and the folder after it. Without it the rename can reach the disk before the
    data, leaving an empty file where the old one was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _create_beside(path)
    try:
        yield tmp
        if durable:
            _fsync(tmp)
        os.replace(tmp, path)
        if durable:
            _fsync(path.parent)
    finally:
        tmp.unlink(missing_ok=True)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _create_beside(path: Path) -> Path:
    """Create a new empty file with a random name next to `path`. Unlike mkstemp's private
    0600 file it is created with mode 0666, so the kernel applies the current umask (and
    any default ACL) exactly as for a plain open(): no umask read, no chmod."""
    while True:
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            continue
        os.close(fd)
        return tmp


def write_text_atomic(path: str | os.PathLike, text: str, *, durable: bool = False) -> None:
    with atomic_path(path, durable=durable) as tmp:
        tmp.write_text(text, encoding="utf-8")


@contextlib.contextmanager
def stderr_to(path: str | os.PathLike) -> Iterator[None]:
    """Point file descriptor 2 at ``path`` (appending) for the duration: child processes
    started meanwhile inherit it. submitit's local job controllers print a KeyboardInterrupt
    traceback when their job is cancelled; started under this, that goes to a log file, not
    to the user's terminal."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sys.stderr.flush()
    saved = os.dup(2)
    with open(path, "ab") as f:
        os.dup2(f.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
