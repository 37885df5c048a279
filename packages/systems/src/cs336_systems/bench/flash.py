"""FlashAttention-2 benchmarks: the course's leaderboard case and the full sweep.

Leaderboard: q, k, v of shape (16, 16384, 64) bf16, causal, forward + backward of
``torch.compile(FlashAttentionTriton.apply)`` next to PyTorch's fused SDPA (flash backend)
and the naive PyTorch attention, on the same tensors. Sweep: batch 1, causal, sequence
lengths 128 .. 65536, head dims 16 .. 128, bf16 and fp32; forward, backward, end to end.

Rates use the usual FlashAttention FLOP count: forward ``4·b·n²·d`` (two matmuls), halved
when causal; backward 2.5 times that (five matmuls, two of them recomputation-free). They
are compared with a dense bf16 matmul measured in the same run. On the GPU the timer is
``triton.testing.do_bench`` (median of CUDA-event timings); on the CPU (``--smoke``) the
same functions run through the PyTorch implementations with a wall-clock timer.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from tqdm import tqdm

from cs336_common.nn import causal_mask, scaled_dot_product_attention
from cs336_systems.bench.harness import (
    OOM,
    compile_for_repeated_backward,
    free_memory,
    run_or_oom,
    time_fn,
)
from cs336_systems.flash_pytorch import FlashAttentionPyTorch

DTYPES = {"bf16": torch.bfloat16, "fp32": torch.float32}
MODES = ("fwd", "bwd", "fwd+bwd")


def attention_flops(batch: int, seq: int, d: int, is_causal: bool, mode: str) -> float:
    fwd = 4 * batch * seq * seq * d / (2 if is_causal else 1)
    return {"fwd": fwd, "bwd": 2.5 * fwd, "fwd+bwd": 3.5 * fwd}[mode]


def naive_attention(q, k, v, is_causal: bool):
    mask = causal_mask(q.shape[-2], k.shape[-2], q.device) if is_causal else None
    return scaled_dot_product_attention(q, k, v, mask)


def _sdpa_fused(q, k, v, is_causal: bool):
    """PyTorch's flash kernel (16-bit), or its memory-efficient kernel where flash has no
    kernel (fp32); never the unfused math fallback."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    with sdpa_kernel([SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION]):
        return F.scaled_dot_product_attention(q, k, v, is_causal=is_causal)


def implementations(device: torch.device) -> dict[str, Callable]:
    """name -> fn(q, k, v, is_causal). The GPU set is the leaderboard's; the CPU set
    (smoke runs) swaps in the PyTorch FlashAttention and the default SDPA kernel."""
    if device.type != "cuda":
        return {
            "ours (FlashAttentionPyTorch)": FlashAttentionPyTorch.apply,
            "torch SDPA": lambda q, k, v, c: F.scaled_dot_product_attention(q, k, v, is_causal=c),
            "naive": naive_attention,
        }
    from cs336_systems.flash_triton import FlashAttentionTriton

    # the sweep compiles one graph per (dtype, head dim): more than dynamo's default limit
    torch._dynamo.config.recompile_limit = 64
    return {
        "ours (compiled FlashAttentionTriton)": compile_for_repeated_backward(
            FlashAttentionTriton.apply
        ),
        "torch SDPA (flash; mem-efficient for fp32)": _sdpa_fused,
        "naive": naive_attention,
    }


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


def time_attention(fn, q, k, v, is_causal: bool, bench: Bencher) -> dict[str, float | str]:
    """ms for forward, backward alone, and forward + backward; OOM where memory runs out."""
    grad_out = torch.randn_like(q)
    inputs = [q, k, v]

    def fwd():
        return fn(q, k, v, is_causal)

    def bwd_only():
        out = fwd()
        return bench(lambda: torch.autograd.backward(out, grad_out, retain_graph=True), inputs)

    result = {
        "fwd": run_or_oom(lambda: bench(fwd)),
        "bwd": run_or_oom(bwd_only),
        "fwd+bwd": run_or_oom(
            lambda: bench(lambda: torch.autograd.backward(fwd(), grad_out), inputs)
        ),
    }
    for t in inputs:
        t.grad = None
    free_memory()
    return result


def _rel_error(impls: dict[str, Callable], q, k, v) -> float:
    """‖ours − torch‖ / ‖torch‖ on the output: checks the autotuned configs at every
    benchmarked shape (the GPU unit tests pin one config per kernel)."""
    ours, torch_fused = list(impls.values())[:2]
    with torch.no_grad():
        a, b = ours(q, k, v, True).float(), torch_fused(q, k, v, True).float()
    return ((a - b).norm() / b.norm()).item()


def matmul_tflops(device: torch.device, bench: Bencher, n: int = 8192) -> float:
    """Dense bf16 matmul rate of this device (the ceiling the attention rates are read against)."""
    if device.type != "cuda":
        n = 512
    g = torch.Generator(device=device).manual_seed(0)
    a, b = (torch.randn(n, n, generator=g, device=device, dtype=torch.bfloat16) for _ in range(2))
    return 2 * n**3 / bench(lambda: a @ b) / 1e9


def leaderboard(
    device: torch.device, batch=16, seq=16384, d=64, dtype="bf16", progress=True
) -> tuple[list[dict], float]:
    """Rows per implementation, and the measured dense bf16 matmul TFLOP/s."""
    bench = Bencher(device)
    peak = matmul_tflops(device, bench)
    rows = []
    q, k, v = _qkv(batch, seq, d, DTYPES[dtype], device)
    for name, fn in tqdm(implementations(device).items(), desc="leaderboard", disable=not progress):
        times = time_attention(fn, q, k, v, True, bench)
        row = {"implementation": name, "shape": f"({batch}, {seq}, {d})", "dtype": dtype}
        for mode in MODES:
            row[f"{mode} ms"] = times[mode]
        row.update(_rates(times, batch, seq, d, peak))
        rows.append(row)
    return rows, peak


def _tflops(ms: float | str, flops: float) -> float | str:
    return OOM if ms == OOM else flops / ms / 1e9


def _rates(times: dict, batch: int, seq: int, d: int, peak: float) -> dict:
    rate = _tflops(times["fwd+bwd"], attention_flops(batch, seq, d, True, "fwd+bwd"))
    return {"fwd+bwd TFLOP/s": rate, "% of matmul": OOM if rate == OOM else 100 * rate / peak}


def sweep(
    device: torch.device,
    seqs=tuple(2**i for i in range(7, 17)),
    dims=(16, 32, 64, 128),
    dtypes=("bf16", "fp32"),
    progress=True,
) -> list[dict]:
    """Batch 1, causal. One row per (dtype, d, seq, implementation)."""
    bench = Bencher(device, rep_ms=20, warmup_ms=10)
    impls = implementations(device)
    cases = [(dt, d, s) for dt in dtypes for d in dims for s in seqs]
    rows = []
    for dtype, d, seq in tqdm(cases, desc="sweep", disable=not progress):
        q, k, v = _qkv(1, seq, d, DTYPES[dtype], device, seed=seq + d)
        err = _rel_error(impls, q, k, v)
        for name, fn in impls.items():
            times = time_attention(fn, q, k, v, True, bench)
            row = {"dtype": dtype, "d": d, "seq": seq, "implementation": name.split()[0]}
            row |= {f"{mode} ms": times[mode] for mode in MODES}
            row |= {
                f"{mode} TFLOP/s": _tflops(times[mode], attention_flops(1, seq, d, True, mode))
                for mode in MODES
            }
            row["out rel err vs torch"] = err if name.startswith("ours") else ""
            rows.append(row)
        del q, k, v
        free_memory()
    return rows
