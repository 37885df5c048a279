"""Benchmark results as a Markdown table (for the terminal and READMEs) and a CSV file."""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cs336_common.io import write_text_atomic


def _columns(rows: Sequence[dict[str, Any]]) -> list[str]:
    """Every key of every row, in first-seen order (rows may differ, e.g. OOM rows)."""
    return list(dict.fromkeys(key for row in rows for key in row))


def _cell(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def markdown_table(rows: Sequence[dict[str, Any]]) -> str:
    """Rows -> a Markdown table; floats get 4 significant digits, missing cells stay empty."""
    cols = _columns(rows)
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(_cell(r.get(c, "")) for c in cols) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def write_csv(path: str | os.PathLike, rows: Sequence[dict[str, Any]]) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=_columns(rows), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    write_text_atomic(path, buf.getvalue())


def write_results(
    rows: Sequence[dict[str, Any]], out_dir: str | os.PathLike, name: str, header: str = ""
) -> Path:
    """``<out_dir>/<name>.md`` (``header`` + table) and ``<name>.csv``; returns the .md path."""
    out_dir = Path(out_dir)
    write_csv(out_dir / f"{name}.csv", rows)
    md_path = out_dir / f"{name}.md"
    write_text_atomic(md_path, (header + "\n\n" if header else "") + markdown_table(rows))
    return md_path
