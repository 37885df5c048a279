"""Checks that run before any long work starts: output paths that can be written and
never overwrite an input, and JSON and JSONL files read with errors that name the file."""

from __future__ import annotations

import errno
import json
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from cs336_common.errors import InputError, UserError


def read_json(path: str | os.PathLike, what: str = "JSON file") -> Any:
    """The parsed contents of ``path``; a missing file is FileNotFoundError and malformed
    JSON an `InputError`, both naming the file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise FileNotFoundError(f"{what} not found: {path}") from None
    except UnicodeDecodeError as e:
        raise InputError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise InputError(
            f"{path}: malformed JSON ({e.msg}, line {e.lineno} column {e.colno})"
        ) from None


def parse_jsonl(raw: bytes, where: str) -> list[dict[str, Any]]:
    """The JSON objects, one a line, of ``raw`` (blank lines skipped; [] when there are
    none); text that is not UTF-8, a malformed line or a line that is not an object is an
    `InputError` naming ``where`` and the line."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise InputError(f"{where}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    rows = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise InputError(f"{where}:{n}: malformed JSON ({e.msg})") from None
        if not isinstance(row, dict):
            raise InputError(f"{where}:{n}: expected a JSON object, got {type(row).__name__}")
        rows.append(row)
    return rows


def check_output(
    path: str | os.PathLike,
    *,
    inputs: Iterable[str | os.PathLike] = (),
    flag: str = "--out",
    directory: bool = False,
    suffixes: Iterable[str] | None = None,
) -> Path:
    """Refuse, before any work, an output that would replace one of ``inputs``, a file
    where a folder is due (or the reverse), a location that cannot be created or written,
    or (with ``suffixes``, e.g. ``(".png", ".pdf")``) a file name of another type."""
    path = Path(path)
    if suffixes is not None:
        suffixes = tuple(suffixes)
        if path.suffix.lower() not in suffixes:
            raise UserError(f"{flag} {path}: the file name must end in {', '.join(suffixes)}")
    for source in inputs:
        if _same_file(path, Path(source)):
            raise UserError(f"{flag} {path} is also an input ({source}); it would be overwritten")
    if directory and path.exists() and not path.is_dir():
        raise UserError(f"{flag} {path} is a file; it must be a folder (or not exist yet)")
    if not directory and path.is_dir():
        raise UserError(f"{flag} {path} is a folder; it must be a file name")
    _check_writable(path if directory else path.parent, flag, path)
    return path


def _same_file(a: Path, b: Path) -> bool:
    if a.exists() and b.exists():
        return os.path.samefile(a, b)
    return a.resolve() == b.resolve()


def _check_writable(folder: Path, flag: str, path: Path) -> None:
    """The nearest existing ancestor of ``folder`` must be a folder we can create a file in."""
    existing = folder
    while not existing.exists():
        if existing.parent == existing:
            break
        existing = existing.parent
    if not existing.is_dir():
        raise UserError(f"{flag} {path}: {existing} is a file, not a folder")
    if problem := _cannot_create_in(existing):
        raise UserError(f"{flag} {path}: cannot write in {existing} ({problem})")


def _cannot_create_in(folder: Path) -> str | None:
    """Why no file can be created in ``folder``, or None. Tried for real: `os.access` reads
    permission bits, which root passes even where nothing can be created (/proc, /sys,
    a network mount that maps root to nobody). An unnamed file (Linux's O_TMPFILE) leaves
    the folder as it was, its mtime too; where the filesystem has none, a named one is
    created and removed."""
    unnamed = getattr(os, "O_TMPFILE", None)
    reason = None
    if unnamed is not None:
        try:
            os.close(os.open(folder, unnamed | os.O_WRONLY, 0o600))
            return None
        except OSError as e:
            if e.errno not in (errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL):
                return e.strerror
            reason = e.strerror  # not supported here: try a named file
    try:
        fd, probe = tempfile.mkstemp(prefix=".write-check-", dir=folder)
    except OSError as e:
        return reason or e.strerror
    os.close(fd)
    os.unlink(probe)
    return None
