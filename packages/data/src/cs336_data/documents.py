"""Documents on disk: gzip JSON Lines, one object per document, as Dolma and datatrove use.

A document is {"id", "text", "metadata": {...}}; every stage adds its annotations to
`metadata` (URL, WARC record id, language and score, classifier scores, ...)."""

from __future__ import annotations

import gzip
import json
import os
from collections.abc import Iterator
from pathlib import Path

from cs336_common.io import atomic_path

SUFFIX = ".jsonl.gz"


def shard_name(path: str | os.PathLike) -> str:
    """The name of the output shard of an input file: its name without known extensions."""
    name = Path(path).name
    for ext in (".gz", ".jsonl", ".json", ".warc", ".wet", ".html", ".htm", ".txt"):
        name = name.removesuffix(ext)
    return name


def read_documents(path: str | os.PathLike, errors: list | None = None) -> Iterator[dict]:
    """Documents of a (gzipped or plain) JSONL file. A malformed line is skipped and, when
    `errors` is given, appended to it as (line number, reason)."""
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8", errors="replace") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                doc = json.loads(line)
                if not isinstance(doc, dict) or not isinstance(doc.get("text"), str):
                    raise ValueError("no 'text' string")
            except ValueError as e:
                if errors is not None:
                    errors.append((n, str(e)[:100]))
                continue
            doc.setdefault("id", f"{shard_name(path)}/{n}")
            doc.setdefault("metadata", {})
            yield doc


class DocumentWriter:
    """Writes a shard to a temporary file and renames it into place on close, so a killed
    run never leaves a partial shard under the final name."""

    def __init__(self, path: str | os.PathLike):
        self._ctx = atomic_path(path)
        tmp = self._ctx.__enter__()
        self._f = gzip.open(tmp, "wt", encoding="utf-8", compresslevel=3)  # noqa: SIM115 (closed in __exit__)

    def write(self, doc: dict) -> None:
        self._f.write(json.dumps(doc, ensure_ascii=False) + "\n")

    def __enter__(self) -> DocumentWriter:
        return self

    def __exit__(self, *exc) -> None:
        self._f.close()
        self._ctx.__exit__(*exc)
