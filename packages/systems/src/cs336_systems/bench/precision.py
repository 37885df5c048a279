"""Mixed-precision accumulation: add 0.01 a thousand times (exact answer: 10).

A float16 accumulator rounds every partial sum to 11 significant bits, so the error grows
with each add; a float32 accumulator fed float16 values keeps the sum exact up to the
(already rounded) addend 0.01 ≈ 0.010002 in float16. Hence mixed precision keeps
accumulators (sums, matmul outputs, optimizer state) in float32.
"""

from __future__ import annotations

import torch

CASES = {
    "fp32 accumulator, fp32 addend": (torch.float32, torch.float32),
    "fp16 accumulator, fp16 addend": (torch.float16, torch.float16),
    "fp32 accumulator, fp16 addend": (torch.float32, torch.float16),
    "bf16 accumulator, bf16 addend": (torch.bfloat16, torch.bfloat16),
}


def accumulate(acc_dtype: torch.dtype, addend_dtype: torch.dtype, n: int = 1000) -> float:
    total = torch.tensor(0.0, dtype=acc_dtype)
    addend = torch.tensor(0.01, dtype=addend_dtype)
    for _ in range(n):
        total += addend.to(acc_dtype)
    return total.item()


def accumulation_table() -> list[dict]:
    sums = {name: accumulate(*dtypes) for name, dtypes in CASES.items()}
    return [
        {"case": k, "sum of 1000 × 0.01": f"{v:.6f}", "error": f"{v - 10:+.6f}"}
        for k, v in sums.items()
    ]
