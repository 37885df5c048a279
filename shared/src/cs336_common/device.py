"""Device helpers: which device to run on, waiting for it, its peak FLOP/s, and a
wall-clock timer that includes the device's queued work."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

import torch

from cs336_common.errors import InputError

# Dense bf16 tensor-core peaks (FLOP/s, no sparsity) from the vendor datasheets, matched
# against torch.cuda.get_device_name() in this order (the first substring found wins).
_PEAK_BF16_FLOPS = (
    ("H100 PCIe", 756e12),
    ("H100 NVL", 835e12),
    ("H100", 989e12),
    ("H200", 989e12),
    ("B200", 2250e12),
    ("A100", 312e12),
    ("L40S", 362e12),
    ("L40", 181e12),
    ("L4", 121e12),
    ("A10", 125e12),
)


def resolve_device(name: str = "auto") -> torch.device:
    """``"auto"``: CUDA if present, else Apple MPS, else CPU; any other name as given,
    checked: an unknown name or a device this machine lacks is an `InputError`."""
    if name != "auto":
        return _available(name)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def _available(name: str) -> torch.device:
    try:
        device = torch.device(name)
    except RuntimeError:
        raise InputError(f"unknown device {name!r}; use auto, cpu, cuda, cuda:N or mps") from None
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise InputError(f"device {name!r}: this machine has no CUDA GPU; use auto or cpu")
        if device.index is not None and device.index >= count:
            raise InputError(f"device {name!r}: this machine has {count} CUDA GPU(s)")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise InputError(f"device {name!r}: Apple MPS is not available here; use auto or cpu")
    return device


def synchronize(device: torch.device | str) -> None:
    """Wait for the device's queued kernels (a no-op on the CPU, which runs eagerly)."""
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def peak_flops(device: torch.device, precision: str) -> float | None:
    """Peak matmul FLOP/s of ``device`` at ``precision`` ("bf16" or "fp32"), or None when
    unknown (CPUs, MPS, unlisted GPUs). fp32 matmuls run as TF32 at half the bf16 rate."""
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    for key, peak in _PEAK_BF16_FLOPS:
        if key in name:
            return peak if precision == "bf16" else peak / 2
    return None


class Timer:
    """``with Timer(device) as t: ...`` then ``t.seconds``: wall time of the block,
    synchronising the device on entry and exit so its asynchronous work is inside."""

    def __init__(self, device: torch.device | str = "cpu") -> None:
        self.device = torch.device(device)
        self.seconds = float("nan")

    def __enter__(self) -> Timer:
        synchronize(self.device)
        self._start = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        synchronize(self.device)
        self.seconds = time.perf_counter() - self._start


@contextmanager
def tf32_matmuls(device: torch.device) -> Iterator[None]:
    """TF32 matmuls on CUDA (fp32 range, a 10-bit mantissa, tensor-core speed) inside the
    block; the process gets its own setting back after it (library calls must not leave
    exact-fp32 callers on TF32)."""
    previous = torch.get_float32_matmul_precision()
    if device.type == "cuda":
        torch.set_float32_matmul_precision("high")
    try:
        yield
    finally:
        torch.set_float32_matmul_precision(previous)
