"""FlashAttention-2 benchmarks against what PyTorch users get: every SDPA backend.

Leaderboard: the course's case, q, k, v of shape (16, 16384, 64) bf16, causal. Ours
(``FlashAttentionTriton.apply``), PyTorch's default ``scaled_dot_product_attention`` (the
table names the backend it dispatches to: cuDNN on Hopper with torch 2.11), and each SDPA
backend forced: cuDNN, flash, memory-efficient. Forward alone and forward + backward, on
the same tensors, in ``rounds`` interleaved rounds (each the median of ``do_bench``); the
table gives the median over rounds and their [min, max]. A backend that has no kernel for
the inputs reads ``n/a``.

Errors: for each of them, the max abs error of O, dQ, dK and dV against float64 attention
on the same inputs (a smaller batch, so that float64 scores fit).

Sweep: the course's grid, batch 1, causal, sequence lengths 128 .. 65536, head dims
16 .. 128, bf16 and fp32 (TF32 allowed, as the ``bench`` command sets): ours against the
default SDPA, the backend named per row; forward and forward + backward.

Rates use the usual FlashAttention FLOP count: forward ``4·b·n²·d`` (two matmuls), halved
when causal; backward 2.5 times that. On the CPU (``--smoke``) ours is the tiled PyTorch
implementation and the timer is wall-clock.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel
from tqdm import tqdm

from cs336_common.nn import causal_mask, scaled_dot_product_attention
from cs336_systems.bench.harness import OOM, free_memory, is_oom, time_fn
from cs336_systems.flash_pytorch import FlashAttentionPyTorch

DTYPES = {"bf16": torch.bfloat16, "fp32": torch.float32}
MODES = ("fwd", "fwd+bwd")
NA = "n/a"
_BACKEND_NAMES = {
    SDPBackend.CUDNN_ATTENTION: "cuDNN",
    SDPBackend.FLASH_ATTENTION: "flash",
    SDPBackend.EFFICIENT_ATTENTION: "efficient",
    SDPBackend.MATH: "math",
}


def attention_flops(batch: int, seq: int, d: int, is_causal: bool, mode: str) -> float:
    fwd = 4 * batch * seq * seq * d / (2 if is_causal else 1)
    return {"fwd": fwd, "bwd": 2.5 * fwd, "fwd+bwd": 3.5 * fwd}[mode]


def naive_attention(q, k, v, is_causal: bool):
    mask = causal_mask(q.shape[-2], k.shape[-2], q.device) if is_causal else None
    return scaled_dot_product_attention(q, k, v, mask)


def sdpa(backend: SDPBackend | None = None) -> Callable:
    """``fn(q, k, v, is_causal)``: PyTorch's SDPA, its default choice or one backend forced."""

    def fn(q, k, v, is_causal):
        if backend is None:
            return F.scaled_dot_product_attention(q, k, v, is_causal=is_causal)
        with sdpa_kernel([backend]):
            return F.scaled_dot_product_attention(q, k, v, is_causal=is_causal)

    return fn


def default_backend(q, k, v, is_causal: bool) -> str:
    """The backend PyTorch's default SDPA picks for these inputs (its own dispatch rule)."""
    choice = torch._fused_sdp_choice(q, k, v, is_causal=is_causal)
    by_value = {b.value: name for b, name in _BACKEND_NAMES.items()}
    return by_value.get(choice, f"backend {choice}")


def implementations(device: torch.device, default: str) -> dict[str, Callable]:
    """name -> fn(q, k, v, is_causal): ours, the default SDPA (named), each backend forced."""
    if device.type == "cuda":
        from cs336_systems.flash_triton import FlashAttentionTriton

        ours = ("ours (FlashAttentionTriton)", FlashAttentionTriton.apply)
    else:
        ours = ("ours (FlashAttentionPyTorch)", FlashAttentionPyTorch.apply)
    impls = dict([ours, (f"SDPA default (→ {default})", sdpa())])
    for backend, name in _BACKEND_NAMES.items():
        if backend != SDPBackend.MATH:
            impls[f"SDPA {name}"] = sdpa(backend)
    return impls


@dataclass
class Bencher:
    """Times a no-argument function in milliseconds on ``device``."""

    device: torch.device
    rep_ms: int = 100
    warmup_ms: int = 25
    cpu_steps: int = 3

    def __call__(self, fn: Callable[[], object], grad_to_none=None) -> float:
        """``grad_to_none``: tensors whose .grad is cleared before each call, untimed."""
        if self.device.type == "cuda":
            import triton.testing

            return triton.testing.do_bench(
                fn,
                warmup=self.warmup_ms,
                rep=self.rep_ms,
                grad_to_none=grad_to_none,
                return_mode="median",
            )
        return time_fn(fn, warmup=1, steps=self.cpu_steps, device=self.device).mean_ms


def _qkv(batch, seq, d, dtype, device, seed=0):
    """(batch, 1 head, seq, d): PyTorch's fused SDPA kernels accept only 4-D inputs."""
    g = torch.Generator(device=device).manual_seed(seed)
    return [
        torch.randn(batch, 1, seq, d, generator=g, device=device, dtype=dtype).requires_grad_()
        for _ in range(3)
    ]


def _run(fn: Callable[[], object]):
    """``fn()``; ``OOM`` when memory runs out, ``n/a`` when the backend has no kernel."""
    try:
        return fn()
    except RuntimeError as exc:  # torch.OutOfMemoryError is a RuntimeError too
        if is_oom(exc):
            free_memory()
            return OOM
        if "No available kernel" in str(exc) or "No viable backend" in str(exc):
            return NA
        raise


def time_attention(fn, q, k, v, is_causal: bool, bench: Bencher) -> dict[str, float | str]:
    """ms for the forward and for forward + backward (OOM / n/a where they cannot run)."""
    grad_out = torch.randn_like(q)
    inputs = [q, k, v]

    def fwd():
        return fn(q, k, v, is_causal)

    result = {
        "fwd": _run(lambda: bench(fwd)),
        "fwd+bwd": _run(lambda: bench(lambda: torch.autograd.backward(fwd(), grad_out), inputs)),
    }
    for t in inputs:
        t.grad = None
    return result


def _tflops(ms: float | str, flops: float) -> float | str:
    return ms if isinstance(ms, str) else flops / ms / 1e9


def _median_spread(values: list) -> tuple[float | str, str]:
    failed = [v for v in values if isinstance(v, str)]
    if failed:
        return failed[0], ""
    return statistics.median(values), f"[{min(values):.3f}, {max(values):.3f}]"


def matmul_tflops(device: torch.device, bench: Bencher, n: int = 8192) -> float:
    """Dense bf16 matmul rate of this device (the ceiling the attention rates are read against)."""
    if device.type != "cuda":
        n = 512
    g = torch.Generator(device=device).manual_seed(0)
    a, b = (torch.randn(n, n, generator=g, device=device, dtype=torch.bfloat16) for _ in range(2))
    return 2 * n**3 / bench(lambda: a @ b) / 1e9


def leaderboard(
    device: torch.device, batch=16, seq=16384, d=64, dtype="bf16", rounds=5, progress=True
) -> tuple[list[dict], float, str]:
    """Rows per implementation, the measured dense bf16 matmul TFLOP/s, the default backend."""
    bench = Bencher(device)
    peak = matmul_tflops(device, bench)
    q, k, v = _qkv(batch, seq, d, DTYPES[dtype], device)
    default = default_backend(q, k, v, True)
    impls = implementations(device, default)
    times = {name: {mode: [] for mode in MODES} for name in impls}
    steps = [(r, name) for r in range(rounds) for name in impls]  # rounds interleave impls
    for _, name in tqdm(steps, desc="leaderboard", disable=not progress):
        for mode, ms in time_attention(impls[name], q, k, v, True, bench).items():
            times[name][mode].append(ms)
    rows = []
    for name in impls:
        row = {"implementation": name, "shape": f"({batch}, {seq}, {d})", "dtype": dtype}
        for mode in MODES:
            ms, spread = _median_spread(times[name][mode])
            rate = _tflops(ms, attention_flops(batch, seq, d, True, mode))
            row |= {f"{mode} ms": ms, f"{mode} [min, max]": spread, f"{mode} TFLOP/s": rate}
        rate = row["fwd+bwd TFLOP/s"]
        row["fwd+bwd % of matmul"] = rate if isinstance(rate, str) else 100 * rate / peak
        rows.append(row)
    free_memory()
    return rows, peak, default


def errors(device: torch.device, batch=4, seq=4096, d=64, dtype="bf16") -> list[dict]:
    """Max abs error of O, dQ, dK, dV vs float64 attention, per implementation."""
    q, k, v = _qkv(batch, seq, d, DTYPES[dtype], device, seed=1)
    grad_out = torch.randn(q.shape, generator=torch.Generator(device).manual_seed(2),
                           device=device, dtype=q.dtype)  # fmt: skip
    q64, k64, v64 = (t.detach().double().requires_grad_() for t in (q, k, v))
    s = (q64 @ k64.transpose(-2, -1) / math.sqrt(d)).masked_fill(
        torch.ones(seq, seq, dtype=torch.bool, device=device).triu(1), -math.inf
    )
    ref = torch.softmax(s, dim=-1) @ v64
    refs = (ref, *torch.autograd.grad(ref, (q64, k64, v64), grad_out.double()))
    del s, ref
    rows = []
    for name, fn in implementations(device, default_backend(q, k, v, True)).items():
        row = {"implementation": name, "shape": f"({batch}, {seq}, {d})", "dtype": dtype}

        def outputs(fn=fn):
            out = fn(q, k, v, True)
            return (out, *torch.autograd.grad(out, (q, k, v), grad_out))

        got = _run(outputs)
        for label, i in zip(("O", "dQ", "dK", "dV"), range(4), strict=True):
            err = got if isinstance(got, str) else (got[i].double() - refs[i]).abs().max().item()
            row[f"{label} max abs err"] = err
        rows.append(row)
    free_memory()
    return rows


def sweep(
    device: torch.device,
    seqs=tuple(2**i for i in range(7, 17)),
    dims=(16, 32, 64, 128),
    dtypes=("bf16", "fp32"),
    progress=True,
) -> list[dict]:
    """Batch 1, causal. One row per (dtype, d, seq, implementation): ours, default SDPA."""
    bench = Bencher(device, rep_ms=20, warmup_ms=10)
    cases = [(dt, d, s) for dt in dtypes for d in dims for s in seqs]
    rows = []
    for dtype, d, seq in tqdm(cases, desc="sweep", disable=not progress):
        q, k, v = _qkv(1, seq, d, DTYPES[dtype], device, seed=seq + d)
        default = default_backend(q, k, v, True)
        impls = list(implementations(device, default).items())[:2]
        for name, fn in impls:
            times = time_attention(fn, q, k, v, True, bench)
            row = {"dtype": dtype, "d": d, "seq": seq, "implementation": name}
            row |= {f"{mode} ms": times[mode] for mode in MODES}
            row |= {
                f"{mode} TFLOP/s": _tflops(times[mode], attention_flops(1, seq, d, True, mode))
                for mode in MODES
            }
            rows.append(row)
        del q, k, v
        free_memory()
    return rows
