"""JSONL data files (one JSON object a line), read with errors that name the file and line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cs336_common.checks import parse_jsonl
from cs336_common.errors import InputError


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """The rows of a JSONL data file (`cs336_common.checks.parse_jsonl`); a file with no
    rows is an `InputError` naming it too."""
    rows = parse_jsonl(Path(path).read_bytes(), str(path))
    if not rows:
        raise InputError(f"{path}: no examples (the file is empty)")
    return rows
