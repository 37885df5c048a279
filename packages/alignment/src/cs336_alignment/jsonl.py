"""JSONL data files (one JSON object a line), read with errors that name the file and line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from cs336_common.errors import InputError


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """Rows of a JSONL file (see `parse_jsonl`)."""
    return parse_jsonl(Path(path).read_bytes(), str(path))


def parse_jsonl(raw: bytes, where: str) -> list[dict[str, Any]]:
    """The JSON objects, one a line, of ``raw`` (blank lines skipped); text that is not
    UTF-8, a malformed line, a line that is not an object, or no rows at all is an
    `InputError` naming ``where`` (and the line)."""
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
            raise InputError(f"{where}:{n}: not valid JSON ({e.msg})") from None
        if not isinstance(row, dict):
            raise InputError(f"{where}:{n}: expected a JSON object, got {type(row).__name__}")
        rows.append(row)
    if not rows:
        raise InputError(f"{where}: no examples (the file is empty)")
    return rows
