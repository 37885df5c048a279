"""What every benchmark shares: device choice, timing with device syncs, OOM capture,
NVTX ranges, and result tables written as Markdown and CSV."""

from __future__ import annotations

import contextlib
import statistics
import timeit
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch

OOM = "OOM"


def resolve_device(name: str = "auto") -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(name)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


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
