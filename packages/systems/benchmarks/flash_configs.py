"""Time every candidate config of each FlashAttention kernel at one shape: how the short
candidate lists in ``cs336_common.nn.flash_attention._SPACES`` were chosen.

    PYTHONPATH=shared/src:packages/systems/src python3 packages/systems/benchmarks/flash_configs.py \
        --shape 16,1,16384,64 --dtype bf16 [--precision high] --out DIR

For each kernel and candidate ``(block_a, block_b, num_warps, num_stages[, maxnreg])`` it times the
forward op, or the whole backward op with the other backward kernel at its default,
median of ``do_bench``; it prints one Markdown table per shape and appends it to
``DIR/flash_configs.md``.
"""

from __future__ import annotations

import argparse
import os
import sys
from functools import partial
from pathlib import Path

os.environ["CS336_FLASH_AUTOTUNE"] = "0"  # each candidate alone, without the autotuner's pick

import torch
import triton

from cs336_common.nn import flash_attention as ft

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}


def _time(fn) -> float:
    return triton.testing.do_bench(fn, warmup=10, rep=60, return_mode="median")


def _use(kernel: str, kind: str, cfg) -> None:
    ft._SPACES[kernel][kind] = [tuple(cfg)]
    for k in (ft._flash_fwd, ft._flash_bwd_kv, ft._flash_bwd_dq):
        k.cache.clear()


def configs_table(shape, dtype, candidates: dict, parts, causal=True) -> list[dict]:
    """``parts``: any of fwd, kv, dq."""
    z, h, n, d = shape
    g = torch.Generator(device="cuda").manual_seed(0)
    q, k, v, do = (torch.randn(shape, generator=g, device="cuda", dtype=dtype) for _ in range(4))
    meta = ft._kernel_meta(d, causal, dtype, q, k, v, do)  # TMA where the GPU has it
    kind = ft._space_kind(dtype, meta["BLOCK_D"], meta["DOT_PRECISION"])
    fwd_flops = 4 * z * h * n * n * d / (2 if causal else 1)
    o, lse = ft._forward_op(q, k, v, causal)
    rows = []

    def record(kernel, cfg, fn, flops):
        try:
            ms = _time(fn)
            rate = f"{flops / ms / 1e9:.0f}"
        except Exception as e:  # out of resources etc.: report, keep going
            ms, rate = float("nan"), type(e).__name__
        rows.append(dict(kernel=kernel, config=str(cfg), ms=ms, tflops=rate))
        print(rows[-1], flush=True)

    for kernel in parts:
        default = ft._SPACES[kernel][kind][0]
        for cfg in candidates[kernel]:
            _use(kernel, kind, cfg)
            if kernel == "fwd":
                record(kernel, cfg, partial(ft._forward_op, q, k, v, causal), fwd_flops)
            else:
                fn = partial(ft._backward_op, q, k, v, o, lse, do, causal)
                record(kernel, cfg, fn, 2.5 * fwd_flops)
        _use(kernel, kind, default)
    return rows


# Screened offline for sm_90 (Triton 3.6 ptxas): no or few register spills. A fifth entry
# caps registers per thread (maxnreg).
BROAD = {
    "fwd": [(128, 128, 4, 3), (128, 64, 8, 3), (128, 64, 8, 4), (128, 64, 8, 5), (128, 128, 8, 3),
            (128, 32, 8, 3), (64, 64, 4, 3)],
    "kv": [(64, 64, 4, 3, 168), (64, 64, 4, 3), (64, 64, 4, 2), (64, 128, 8, 3), (64, 128, 8, 2),
           (32, 128, 4, 3), (32, 64, 4, 3), (32, 64, 4, 3, 128)],
    "dq": [(128, 64, 8, 4), (128, 64, 8, 3), (128, 64, 4, 3), (128, 128, 8, 4), (128, 32, 8, 3),
           (64, 64, 4, 3)],
}  # fmt: skip


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--shape", action="append", required=True, help="Z,H,N,D; repeatable")
    p.add_argument("--dtype", choices=DTYPES, default="bf16")
    p.add_argument("--precision", choices=("highest", "high"), default="highest",
                   help="fp32 matmul precision: highest = exact fp32, high = TF32")  # fmt: skip
    p.add_argument("--parts", default="fwd,kv,dq", help="comma list of fwd, kv, dq")
    p.add_argument("--out", type=Path, default=Path("."))
    args = p.parse_args(argv)
    torch.set_float32_matmul_precision(args.precision)
    args.out.mkdir(parents=True, exist_ok=True)
    for spec in args.shape:
        shape = tuple(int(x) for x in spec.split(","))
        rows = configs_table(shape, DTYPES[args.dtype], BROAD, args.parts.split(","))
        lines = [f"\n## {shape} {args.dtype} causal ({torch.cuda.get_device_name()})\n",
                 "| kernel | config (a, b, warps, stages) | ms | TFLOP/s |",
                 "|---|---|---:|---:|"]  # fmt: skip
        lines += [f"| {r['kernel']} | {r['config']} | {r['ms']:.3f} | {r['tflops']} |"
                  for r in rows]  # fmt: skip
        text = "\n".join(lines) + "\n"
        print(text)
        with open(args.out / "flash_configs.md", "a", encoding="utf-8") as f:
            f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
