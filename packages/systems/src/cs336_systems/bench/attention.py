"""The course's attention benchmark: batch 8, one head, causal, head dim d and sequence
length n over a grid; the naive PyTorch attention, the same compiled with torch.compile,
and FlashAttention-2 (Triton on CUDA, the tiled PyTorch version elsewhere). For each:
forward ms, memory in use before the backward (what the forward saved), backward ms.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from tqdm import tqdm

from cs336_common.device import resolve_device, synchronize
from cs336_common.errors import InputError
from cs336_systems.bench.flash import naive_attention
from cs336_systems.bench.harness import (
    OOM,
    compile_for_repeated_backward,
    free_memory,
    run_or_oom,
    time_fn,
)

IMPLS = ("naive", "compiled", "flash")


@dataclass
class AttentionBenchConfig:
    head_dims: tuple[int, ...] = (16, 32, 64, 128)
    seq_lens: tuple[int, ...] = (256, 1024, 4096, 8192, 16384)
    batch_size: int = 8
    impls: tuple[str, ...] = IMPLS
    dtype: str = "fp32"
    warmup: int = 5
    steps: int = 100
    device: str = "auto"

    def __post_init__(self):
        unknown = set(self.impls) - set(IMPLS)
        if unknown:
            raise InputError(f"unknown attention impls {sorted(unknown)}; choose from {IMPLS}")


def _impl(name: str):
    if name == "naive":
        return naive_attention
    if name == "compiled":
        return compile_for_repeated_backward(naive_attention)
    from cs336_systems.attention_backend import flash_attention_backend

    return flash_attention_backend


def bench_attention(cfg: AttentionBenchConfig, progress: bool = True) -> list[dict]:
    device = resolve_device(cfg.device)
    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}[cfg.dtype]
    fns = {name: _impl(name) for name in cfg.impls}
    cases = [(d, n, name) for d in cfg.head_dims for n in cfg.seq_lens for name in cfg.impls]
    rows = []
    for d, n, name in tqdm(cases, desc="bench attention", disable=not progress):
        row = {"d": d, "seq": n, "impl": name}
        row.update(run_or_oom(lambda d=d, n=n, f=fns[name]: _measure(cfg, f, d, n, dtype, device)))
        rows.append(row)
        free_memory()
    return rows


def _measure(cfg, fn, d, n, dtype, device) -> dict:
    g = torch.Generator(device=device).manual_seed(n + d)
    q, k, v = (
        torch.randn(cfg.batch_size, n, d, generator=g, device=device, dtype=dtype).requires_grad_()
        for _ in range(3)
    )
    fwd = time_fn(lambda: fn(q, k, v, True), warmup=cfg.warmup, steps=cfg.steps, device=device)
    result = {"forward ms": str(fwd)}
    base = torch.cuda.memory_allocated(device) if device.type == "cuda" else 0
    out = fn(q, k, v, True)
    synchronize(device)
    saved = (torch.cuda.memory_allocated(device) - base) / 2**20 if device.type == "cuda" else "n/a"
    result["memory before backward MiB"] = saved
    grad = torch.randn_like(out)

    def backward():
        out.backward(grad, retain_graph=True)

    bwd = run_or_oom(lambda: time_fn(backward, warmup=cfg.warmup, steps=cfg.steps, device=device))
    result["backward ms"] = bwd if bwd is OOM else str(bwd)
    return result
