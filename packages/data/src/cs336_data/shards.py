"""One shard through extraction and the per-document steps, as one streaming pass.

Input is a WARC/WET file (gzip or not), an HTML or text file, or a JSONL shard of
documents; output is a JSONL shard plus `<output>.stats.json`, written last: a shard is
finished exactly when its stats file exists."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from cs336_common.io import write_text_atomic
from cs336_data.documents import DocumentWriter, read_documents, shard_name
from cs336_data.stats import StageStats

WARC_SUFFIXES = (".warc", ".warc.gz", ".wet", ".wet.gz", ".arc.gz")
DOC_SUFFIXES = (".jsonl", ".jsonl.gz", ".json.gz")
PAGE_SUFFIXES = (".html", ".htm", ".txt")


def input_kind(path: str | os.PathLike) -> str:
    name = str(path).lower()
    for kind, suffixes in (
        ("warc", WARC_SUFFIXES),
        ("docs", DOC_SUFFIXES),
        ("page", PAGE_SUFFIXES),
    ):
        if name.endswith(suffixes):
            return kind
    raise ValueError(
        f"{path}: unknown input type (expected {', '.join(WARC_SUFFIXES + DOC_SUFFIXES + PAGE_SUFFIXES)})"
    )


def stats_path(output: str | os.PathLike) -> Path:
    return Path(f"{os.fspath(output)}.stats.json")


def load_stats(output: str | os.PathLike) -> dict[str, StageStats]:
    raw = json.loads(stats_path(output).read_text(encoding="utf-8"))
    return {name: StageStats.from_json(s) for name, s in raw.items()}


def save_stats(output: str | os.PathLike, stats: dict[str, StageStats]) -> None:
    raw = {name: s.to_json() for name, s in stats.items()}
    write_text_atomic(stats_path(output), json.dumps(raw, ensure_ascii=False) + "\n")


@dataclass
class FilterTask:
    input: str
    output: str
    steps: list = field(default_factory=list)
    max_bytes: int = 10_000_000
    collect: tuple | None = None  # what to gather for the next stage (collectors.py)

    @property
    def name(self) -> str:
        return Path(self.input).name


def task_done(task) -> bool:
    return stats_path(task.output).is_file() and Path(task.output).is_file()


def _nbytes(doc: dict) -> int:
    return len(doc["text"].encode("utf-8", "replace"))


def _extracted(task: FilterTask, st: StageStats) -> Iterator[dict]:
    """Documents of a raw input, counting every page that yields none."""
    from cs336_data.extract import extract_text_from_html_bytes

    shard = shard_name(task.input)
    if input_kind(task.input) == "page":
        raw = Path(task.input).read_bytes()
        pages = [(raw, task.input.endswith(".txt"), {"source": Path(task.input).name})]
    else:
        pages = _warc_pages(task, st)
    for n, (payload, is_text, meta) in enumerate(pages):
        st.take_in(len(payload))
        try:
            text = (
                payload.decode("utf-8", "replace")
                if is_text
                else extract_text_from_html_bytes(payload)
            )
        except Exception:  # resiliparse on pathological markup: count it, keep going
            st.remove("extract_error")
            continue
        if not text or not text.strip():
            st.remove("no_text")
            continue
        doc = {"id": meta.get("warc_record_id") or f"{shard}/{n}", "text": text, "metadata": meta}
        yield doc


def _warc_pages(task: FilterTask, st: StageStats):
    from cs336_data.warc import iter_pages

    source = Path(task.input).name
    try:
        for page in iter_pages(task.input, task.max_bytes):
            if page.skip:
                st.take_in(len(page.payload))
                st.remove(page.skip)
                continue
            meta = {"url": page.url, "warc_record_id": page.record_id, "date": page.date,
                    "source": source}  # fmt: skip
            yield page.payload, page.is_text, meta
    except OSError:  # a truncated or corrupt file: keep what was read before it
        st.remove("corrupt_file")


def run_filter_task(task: FilterTask) -> None:
    """Extract (raw inputs) and apply `task.steps` in order, writing kept documents."""
    from cs336_data import collectors
    from cs336_data.steps import STEPS

    steps = [STEPS[name](**opts) for name, opts in task.steps]
    collector = collectors.make(task.collect)
    stats: dict[str, StageStats] = {}
    if input_kind(task.input) == "docs":
        errors: list = []
        source = read_documents(task.input, errors)
    else:
        stats["extract"] = StageStats()
        source = _extracted(task, stats["extract"])
    for step in steps:
        stats[step.name] = StageStats()
    with DocumentWriter(task.output) as out:
        for doc in source:
            if "extract" in stats:
                stats["extract"].keep(_nbytes(doc))
            if _apply_steps(doc, steps, stats):
                out.write(doc)
                if collector:
                    collector.add(doc)
    if collector:
        collector.close()
    if input_kind(task.input) == "docs" and errors:
        first = stats[steps[0].name] if steps else stats.setdefault("read", StageStats())
        for _ in errors:
            first.remove("malformed_json")
    save_stats(task.output, stats)


def _apply_steps(doc: dict, steps, stats: dict[str, StageStats]) -> bool:
    for step in steps:
        st = stats[step.name]
        n = _nbytes(doc)
        st.take_in(n)
        rule = step(doc)
        if step.name == "langid":
            st.languages[doc["metadata"]["language"]] += 1
        if rule:
            st.remove(rule, doc)
            return False
        st.keep(_nbytes(doc) if step.name == "mask" else n)
    return True
