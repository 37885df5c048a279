"""What every benchmark shares: device choice, timing with device syncs, OOM capture,
NVTX ranges, and result tables written as Markdown and CSV."""

from __future__ import annotations

import contextlib
import csv
import io
import os
import statistics
import timeit
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from cs336_common.device import synchronize
from cs336_common.io import write_text_atomic

OOM = "OOM"


@dataclass(frozen=True)
class Timing:
    mean_ms: float
    std_ms: float

    def __str__(self) -> str:
        return f"{self.mean_ms:.3f} ± {self.std_ms:.3f}"


def time_fn(fn: Callable[[], object], *, warmup: int, steps: int, device: torch.device) -> Timing:
    """Wall time of ``fn`` per call: ``warmup`` untimed calls (compilation, autotuning,
    allocator growth), then ``steps`` calls each bracketed by device synchronisation
    so that the asynchronous GPU work is inside the measurement."""
    for _ in range(warmup):
        fn()
    synchronize(device)
    times = []
    for _ in range(steps):
        start = timeit.default_timer()
        fn()
        synchronize(device)
        times.append((timeit.default_timer() - start) * 1e3)
    return Timing(statistics.fmean(times), statistics.stdev(times) if steps > 1 else 0.0)


def compile_for_repeated_backward(fn):
    """``torch.compile(fn)`` whose backward may be run again on the same graph
    (``retain_graph=True``), which timing the backward alone needs: AOTAutograd's donated
    buffers (freed by the first backward) are switched off."""
    import torch._functorch.config  # a submodule that `import torch` does not always load

    torch._functorch.config.donated_buffer = False
    return torch.compile(fn)


def has_cpp_compiler() -> bool:
    """Whether torch.compile finds a working C++ compiler for CPU code here."""
    try:
        from torch._inductor.cpp_builder import get_cpp_compiler
        from torch._inductor.exc import InvalidCxxCompiler
    except ImportError:  # another torch: its own error comes later
        return True
    try:
        get_cpp_compiler()
    except InvalidCxxCompiler:
        return False
    return True


def is_oom(exc: BaseException) -> bool:
    return isinstance(exc, torch.OutOfMemoryError) or "out of memory" in str(exc)


def free_memory() -> None:
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def run_or_oom(fn: Callable[[], object]):
    """``fn()``, or ``OOM`` when the device runs out of memory (other errors propagate)."""
    try:
        return fn()
    except (torch.OutOfMemoryError, RuntimeError) as exc:
        if not is_oom(exc):
            raise
        free_memory()
        return OOM


@contextlib.contextmanager
def nvtx_range(name: str, enabled: bool) -> Iterator[None]:
    """An Nsight Systems range, or nothing (no CUDA, or --nvtx not given)."""
    if not (enabled and torch.cuda.is_available()):
        yield
        return
    torch.cuda.nvtx.range_push(name)
    try:
        yield
    finally:
        torch.cuda.nvtx.range_pop()


def device_description(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)}, torch {torch.__version__}"
    return f"CPU, torch {torch.__version__}"


# ---- result tables: Markdown for the terminal and READMEs, CSV for tools ----


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
