"""Compile time and speed of the exact-fp32 kernels per tile set: how the ``"ieee"`` lists
in ``cs336_common.nn.flash_attention._SPACES`` were chosen (exact-fp32 products unroll
into CUDA-core code whose size grows with the tile). Each option runs in a fresh process
with an empty Triton cache: first call (compile) and forward+backward after it, at
(2, 4, 3000, d), causal and not (results/h200_flash/exact_fp32_tiles.log).

    PYTHONPATH=shared/src python3 packages/systems/benchmarks/flash_fp32_tiles.py
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time

# (forward, dK/dV, dQ) configs: (block_a, block_b, num_warps, num_stages)
OPTIONS = {
    "64x32": {"fwd": (64, 32, 4, 2), "kv": (32, 64, 4, 2), "dq": (64, 32, 4, 2)},
    "64x32_8w": {"fwd": (64, 32, 8, 2), "kv": (32, 64, 8, 2), "dq": (64, 32, 8, 2)},
    "32x32": {"fwd": (32, 32, 4, 2), "kv": (32, 32, 4, 2), "dq": (32, 32, 4, 2)},
    "32x32_8w": {"fwd": (32, 32, 8, 2), "kv": (32, 32, 8, 2), "dq": (32, 32, 8, 2)},
    "32x16": {"fwd": (32, 16, 4, 2), "kv": (16, 32, 4, 2), "dq": (32, 16, 4, 2)},
}


def _measure(option: str, d: int) -> dict:
    import torch

    from cs336_common.nn import flash_attention as fa

    for kernel, config in OPTIONS[option].items():
        fa._SPACES[kernel]["ieee"] = [config]
    torch.set_float32_matmul_precision("highest")  # exact fp32 products
    result = {"option": option, "d": d}
    for causal in (True, False):
        gen = torch.Generator(device="cuda").manual_seed(0)
        q, k, v = (
            torch.randn(2, 4, 3000, d, device="cuda", generator=gen, requires_grad=True)
            for _ in range(3)
        )
        seconds = []
        for calls in (1, 3):  # the first call compiles
            start = time.perf_counter()
            for _ in range(calls):
                fa.flash_attention_triton(q, k, v, causal).sum().backward()
            torch.cuda.synchronize()
            seconds.append((time.perf_counter() - start) / calls)
        result["causal" if causal else "full"] = {
            "first_call_s": round(seconds[0], 1),
            "fwd_bwd_ms": round(seconds[1] * 1e3, 2),
        }
    return result


def main() -> None:
    if len(sys.argv) == 3:  # a child: one option, one head dim
        print(json.dumps(_measure(sys.argv[1], int(sys.argv[2]))))
        return
    for option in OPTIONS:
        for d in (128, 64):
            env = dict(os.environ, TRITON_CACHE_DIR=tempfile.mkdtemp())
            proc = subprocess.run(
                [sys.executable, __file__, option, str(d)],
                env=env, capture_output=True, text=True, timeout=300,
            )  # fmt: skip
            lines = [x for x in proc.stdout.splitlines() if x.startswith("{")]
            print(lines[0] if lines else f"{option} d={d} failed: {proc.stderr[-800:]}", flush=True)


if __name__ == "__main__":
    main()
