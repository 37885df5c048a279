"""Host cost of one eager FlashAttention call at a short length, where the GPU waits on the
host: an empty Triton launch, our forward, forward+backward, the backward through autograd
and called directly, against PyTorch's default SDPA. Wall time per call with a CUDA sync,
mean of 300 calls after 20 warm-up calls (results/h200_flash/eager_host_cost.log).

    PYTHONPATH=shared/src python3 packages/systems/benchmarks/flash_host_cost.py [--shape 1,1,256,64]
"""

from __future__ import annotations

import argparse
import time

import torch
import triton
import triton.language as tl
from torch.nn.functional import scaled_dot_product_attention

from cs336_common.nn import flash_attention as fa


@triton.jit
def _noop(x_ptr, n, BLOCK: tl.constexpr):
    i = tl.arange(0, BLOCK)
    tl.store(x_ptr + i, tl.load(x_ptr + i, mask=i < n), mask=i < n)


def _us_per_call(fn, calls: int = 300) -> float:
    for _ in range(20):
        fn()
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    torch.cuda.synchronize()
    return (time.perf_counter() - start) / calls * 1e6


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--shape", default="1,1,256,64", help="batch,heads,seq,d (bf16, causal)")
    shape = tuple(int(x) for x in p.parse_args().shape.split(","))
    gen = torch.Generator(device="cuda").manual_seed(0)
    q, k, v = (
        torch.randn(shape, device="cuda", dtype=torch.bfloat16, generator=gen, requires_grad=True)
        for _ in range(3)
    )
    out = fa.flash_attention_triton(q, k, v, True)
    d_out = torch.ones_like(out)
    _, lse = fa._forward(q, k, v, True)
    x = torch.zeros(64, device="cuda")

    def ours_fwd():
        with torch.no_grad():
            fa.flash_attention_triton(q, k, v, True)

    rows = {
        "empty Triton launch": lambda: _noop[(1,)](x, 64, BLOCK=64),
        "ours, forward (no grad)": ours_fwd,
        "ours, forward called directly": lambda: fa._forward(q, k, v, True),
        "ours, forward + backward": lambda: (
            fa.flash_attention_triton(q, k, v, True).sum().backward()
        ),
        "ours, backward through autograd": lambda: torch.autograd.grad(
            out, (q, k, v), d_out, retain_graph=True
        ),
        "ours, backward called directly": lambda: fa._backward(
            q, k, v, out.detach(), lse, d_out, True
        ),
        "SDPA default, forward + backward": lambda: (
            scaled_dot_product_attention(q, k, v, is_causal=True).sum().backward()
        ),
    }
    print(f"{torch.cuda.get_device_name()}, torch {torch.__version__}, shape {shape} bf16 causal")
    print("| call | µs |\n|---|---:|")
    for name, fn in rows.items():
        print(f"| {name} | {_us_per_call(fn):.1f} |")


if __name__ == "__main__":
    main()
