"""Benchmark results as a Markdown table (for the terminal and READMEs) and a CSV file."""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Sequence
from typing import Any

from cs336_common.io import write_text_atomic


def markdown_table(rows: Sequence[dict[str, Any]]) -> str:
    """Rows sharing the first row's keys -> a Markdown table; floats get 4 significant digits."""
    cols = list(rows[0])
    cell = lambda v: f"{v:.4g}" if isinstance(v, float) else str(v)  # noqa: E731
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(cell(r[c]) for c in cols) + " |" for r in rows]
    return "\n".join(lines)


def write_csv(path: str | os.PathLike, rows: Sequence[dict[str, Any]]) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    write_text_atomic(path, buf.getvalue())
