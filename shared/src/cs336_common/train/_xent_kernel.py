"""The Triton kernel behind `linear_cross_entropy`: a chunk's logits in, each row's loss
out, and the gradient of the logits written over them.

A program owns one row and reads it once from DRAM. Two shapes of program, and the
autotuner times both on the first call for each vocabulary size (the logits are
restored between trials):

- one tile: the whole row in registers (up to ``_ONE_TILE_MAX`` classes): max, sum of
  exponentials and the gradient from the values in hand;
- tiles: an online max/sum-exp over tiles, then a second pass over the row, which the
  first pass left in L2 (its loads ask to keep the lines, the second pass's to drop
  them), that writes the gradient.

The loss ``lse - x[target]`` is computed in float32; the gradient ``softmax(x) -
onehot(target)`` is stored in the logits' dtype, in place: one read and one write of
the (tokens, vocab) tensor, where a compiled ``cross_entropy`` reads it in its forward
and again in its backward. The gradient is left unscaled (entries in [-1, 1]); the
caller scales the two small products it feeds instead of the big tensor.

Runs on CUDA, and on CPU under ``TRITON_INTERPRET=1`` (the tests; one config per
shape of program, no timing); `available` says where. float64 is not handled (the
caller's torch path serves it).
"""

from __future__ import annotations

import os

import torch
from torch import Tensor

try:
    import triton
    import triton.language as tl
except ImportError:  # no Triton (e.g. macOS): the caller's torch path serves
    triton = None

_INTERPRET = os.environ.get("TRITON_INTERPRET") == "1"
_DTYPES = (torch.float32, torch.bfloat16, torch.float16)
# Longest row held in registers: 16384 fp32 values are 32 a thread at 16 warps.
_ONE_TILE_MAX = 16384
# (one tile?, tile for the looped program, warps)
_CANDIDATES = [
    (True, 0, 16),
    (True, 0, 32),
    (False, 2048, 4),
    (False, 2048, 8),
    (False, 4096, 8),
    (False, 8192, 16),
]
_INTERPRETER_CANDIDATES = [(True, 0, 4), (False, 4096, 4)]


def available(logits_like: Tensor) -> bool:
    """Whether the kernel can take logits of this tensor's device and dtype."""
    return (
        triton is not None and logits_like.dtype in _DTYPES and (logits_like.is_cuda or _INTERPRET)
    )


def softmax_xent_(logits: Tensor, targets: Tensor, loss: Tensor, write_grad: bool) -> None:
    """logits: (rows, vocab), unit stride along vocab; targets: (rows,) ids; loss:
    (rows,) float32, receives each row's loss. With ``write_grad`` the logits become
    ``softmax - onehot(target)``."""
    rows, vocab = logits.shape
    if rows == 0:
        return
    _softmax_xent_kernel[(rows,)](
        logits, targets.contiguous(), loss, logits.stride(0), vocab,
        ROW_BLOCK=triton.next_power_of_2(vocab), WRITE_GRAD=write_grad,
    )  # fmt: skip


def _configs():
    candidates = _INTERPRETER_CANDIDATES if _INTERPRET else _CANDIDATES
    return [
        triton.Config({"ONE_TILE": one, "BLOCK": block}, num_warps=warps)
        for one, block, warps in candidates
    ]


def _prune(configs, named_args, **kwargs):
    """One tile only for rows that fit it; the looped program only for rows longer than
    its tile (its first tile must be full: see the kernel). In the interpreter, one."""
    vocab = named_args["vocab"]
    fits = [
        c
        for c in configs
        if (vocab <= _ONE_TILE_MAX if c.kwargs["ONE_TILE"] else vocab > c.kwargs["BLOCK"])
    ]
    return fits[:1] if _INTERPRET else fits


if triton is not None:

    @triton.autotune(
        configs=_configs(),
        key=["vocab", "WRITE_GRAD"],
        prune_configs_by={"early_config_prune": _prune},
        restore_value=["x_ptr"],
    )
    @triton.jit
    def _softmax_xent_kernel(
        x_ptr,
        t_ptr,
        loss_ptr,
        stride,
        vocab,
        ROW_BLOCK: tl.constexpr,
        WRITE_GRAD: tl.constexpr,
        ONE_TILE: tl.constexpr,
        BLOCK: tl.constexpr,
    ):
        row = tl.program_id(0).to(tl.int64)
        x_row = x_ptr + row * stride
        target = tl.load(t_ptr + row)
        # read before the row is overwritten by its gradient
        picked = tl.load(x_row + target).to(tl.float32)
        if ONE_TILE:
            cols = tl.arange(0, ROW_BLOCK)
            mask = cols < vocab
            x = tl.load(x_row + cols, mask=mask, other=-float("inf"), eviction_policy="evict_first")
            x = x.to(tl.float32)
            m = tl.max(x, 0)
            e = tl.exp(x - m)
            total = tl.sum(e, 0)
            lse = m + tl.log(total)
            if WRITE_GRAD:
                p = e * (1.0 / total)
                g = tl.where(cols == target, p - 1.0, p)
                tl.store(x_row + cols, g.to(x_ptr.dtype.element_ty), mask=mask)
        else:
            cols = tl.arange(0, BLOCK)
            # per-lane running max and sum, reduced once at the end; vocab > BLOCK, so the
            # first tile is full and gives every lane a finite max (no -inf - -inf)
            m = tl.full((BLOCK,), -float("inf"), tl.float32)
            s = tl.zeros((BLOCK,), tl.float32)
            for start in range(0, vocab, BLOCK):
                x = tl.load(
                    x_row + start + cols,
                    mask=start + cols < vocab,
                    other=-float("inf"),
                    eviction_policy="evict_last",
                ).to(tl.float32)
                m_new = tl.maximum(m, x)
                s = s * tl.exp(m - m_new) + tl.exp(x - m_new)
                m = m_new
            m_row = tl.max(m, 0)
            lse = m_row + tl.log(tl.sum(s * tl.exp(m - m_row), 0))
            if WRITE_GRAD:
                for start in range(0, vocab, BLOCK):
                    mask = start + cols < vocab
                    x = tl.load(
                        x_row + start + cols, mask=mask, other=0.0, eviction_policy="evict_first"
                    ).to(tl.float32)
                    p = tl.exp(x - lse)
                    g = tl.where(start + cols == target, p - 1.0, p)
                    tl.store(x_row + start + cols, g.to(x_ptr.dtype.element_ty), mask=mask)
        tl.store(loss_ptr + row, lse - picked)
