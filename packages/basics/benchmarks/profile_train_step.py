"""Where a training step's GPU time goes: for each variant of `bench_train_step.py`, the
kernel time per step from the PyTorch profiler (summed over kernels, grouped into GEMMs,
attention, Inductor/Triton kernels, optimizer, other) next to the wall-clock time of a
step, the kernels that take the most time, and the GPU's idle time between kernels with
the longest gaps and the kernels on either side of them.

  PYTHONPATH=shared/src:packages/basics/src python3 packages/basics/benchmarks/profile_train_step.py --variants ci
  python packages/basics/benchmarks/profile_train_step.py --device cpu --tiny --variants b  # check

Kernel time well below wall time means the GPU waits on the host: a gap before the
step's first kernel is the host launching too slowly, a gap in the middle of a step a
host-device sync (the longest gaps name the kernels around it). On the CPU (a check of
the script) it lists operators' own CPU time.
"""

from __future__ import annotations

import argparse
import time
from collections import Counter

import torch
from bench_train_step import VARIANTS, check_variants  # next to this file
from torch.profiler import ProfilerActivity, profile

from cs336_common.device import synchronize
from cs336_common.nn import load_model_config

_GROUPS = (
    ("gemm", ("gemm", "cutlass", "xmma", "nvjet", "cublas")),
    ("attention", ("flash", "fmha", "attention", "cudnn")),
    ("optimizer", ("adam", "multi_tensor")),
    ("triton", ("triton", "_kernel")),
)


def _group(kernel: str) -> str:
    name = kernel.lower()
    return next((g for g, keys in _GROUPS if any(k in name for k in keys)), "other")


def profile_variant(name: str, cfg, device, batch: int, steps: int, top: int) -> None:
    gen = torch.Generator(device=device).manual_seed(0)
    x, y = (
        torch.randint(cfg.vocab_size, (batch, cfg.context_length), device=device, generator=gen)
        for _ in range(2)
    )
    step = VARIANTS[name][1](cfg, device)
    for _ in range(6):  # compile, CUDA-graph recording, autotuning
        step(x, y)
    synchronize(device)
    t0 = time.perf_counter()
    for _ in range(steps):
        step(x, y)
    synchronize(device)
    wall_ms = (time.perf_counter() - t0) / steps * 1e3
    activity = ProfilerActivity.CUDA if device.type == "cuda" else ProfilerActivity.CPU
    with profile(activities=[activity]) as prof:
        for _ in range(steps):
            step(x, y)
        synchronize(device)
    per_kernel, launches = Counter(), Counter()
    cuda = device.type == "cuda"  # on the CPU: operators' own CPU time instead
    spans = []
    for e in prof.events():
        if not cuda or e.device_type == torch.autograd.DeviceType.CUDA:
            per_kernel[e.name] += (e.device_time if cuda else e.self_cpu_time_total) / steps
            launches[e.name] += 1
            spans.append((e.time_range.start, e.time_range.end, e.name))
    total = sum(per_kernel.values())
    print(f"\n{VARIANTS[name][0]}: kernels {total / 1e3:.2f} ms a step, wall {wall_ms:.2f} ms")
    if cuda:
        _print_idle(spans, steps, top=5)
    groups = Counter()
    for kernel, us in per_kernel.items():
        groups[_group(kernel)] += us
    for group, us in groups.most_common():
        print(f"  {group:10s} {us / 1e3:7.3f} ms  {us / max(total, 1e-9):6.1%}")
    for kernel, us in per_kernel.most_common(top):
        print(f"  {us:8.1f} us  x{launches[kernel] // steps:3d}  {kernel[:120]}")


def _print_idle(spans: list[tuple[float, float, str]], steps: int, top: int) -> None:
    """GPU idle time per step (the profiled span minus the union of kernel intervals, in
    µs) and the longest gaps, with the kernel before and after each."""
    spans.sort()
    end, before, idle, gaps = spans[0][0], spans[0][2], 0.0, []
    for start, stop, kernel in spans:
        if start > end:
            idle += start - end
            gaps.append((start - end, before, kernel))
        if stop > end:
            end, before = stop, kernel
    print(f"  GPU idle between kernels: {idle / steps / 1e3:.3f} ms a step; longest gaps:")
    for gap, a, b in sorted(gaps, reverse=True)[:top]:
        print(f"  {gap:8.1f} us  after {a[:55]}  before {b[:55]}")


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--device", default="cuda")
    p.add_argument("--tiny", action="store_true", help="a tiny model and batch")
    p.add_argument("--variants", default="ci", help="letters of bench_train_step.py's variants")
    p.add_argument("--steps", type=int, default=5, help="profiled (and timed) steps")
    p.add_argument("--top", type=int, default=25, help="kernels listed per variant")
    args = p.parse_args()
    check_variants(p, args.variants)
    device = torch.device(args.device)
    cfg = load_model_config("tiny" if args.tiny else "tinystories")
    for name in args.variants:
        profile_variant(name, cfg, device, 4 if args.tiny else 128, args.steps, args.top)


if __name__ == "__main__":
    main()
