"""The Triton kernel behind `linear_cross_entropy`: a chunk's logits in, each row's loss
out, and the gradient of the logits written over them.

A program owns one row. It reads the row once from DRAM (one tile in registers up to
``_ONE_TILE_MAX`` classes; beyond that an online max/sum-exp over tiles, and a second pass
that hits L2), computes ``loss = lse - x[target]`` in float32, and stores
``softmax(x) - onehot(target)`` in the logits' dtype in place: one read and one write
of the (tokens, vocab) tensor, where a compiled ``cross_entropy`` reads it in its
forward and again in its backward. The gradient is left unscaled (entries in [-1, 1]);
the caller scales the two small products it feeds instead of the big tensor.

Runs on CUDA, and on CPU under ``TRITON_INTERPRET=1`` (the tests); `available` says
where. float64 is not handled (the caller's torch path serves it).
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
# Rows up to this many classes stay in registers (16 warps: 32 fp32 values a thread);
# longer rows loop over tiles of _TILE.
_ONE_TILE_MAX = 16384
_TILE = 4096


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
    one_tile = vocab <= _ONE_TILE_MAX
    block = triton.next_power_of_2(vocab) if one_tile else _TILE
    _softmax_xent_kernel[(rows,)](
        logits, targets.contiguous(), loss, logits.stride(0), vocab,
        BLOCK=block, ONE_TILE=one_tile, WRITE_GRAD=write_grad,
        num_warps=max(1, min(16, block // 1024)),
    )  # fmt: skip


if triton is not None:

    @triton.jit
    def _softmax_xent_kernel(
        x_ptr,
        t_ptr,
        loss_ptr,
        stride,
        vocab,
        BLOCK: tl.constexpr,
        ONE_TILE: tl.constexpr,
        WRITE_GRAD: tl.constexpr,
    ):
        row = tl.program_id(0).to(tl.int64)
        x_row = x_ptr + row * stride
        target = tl.load(t_ptr + row)
        # read before the row is overwritten by its gradient
        picked = tl.load(x_row + target).to(tl.float32)
        cols = tl.arange(0, BLOCK)
        if ONE_TILE:
            mask = cols < vocab
            x = tl.load(x_row + cols, mask=mask, other=-float("inf")).to(tl.float32)
            m = tl.max(x, 0)
            e = tl.exp(x - m)
            total = tl.sum(e, 0)
            lse = m + tl.log(total)
            if WRITE_GRAD:
                p = e * (1.0 / total)
                g = tl.where(cols == target, p - 1.0, p)
                tl.store(x_row + cols, g.to(x_ptr.dtype.element_ty), mask=mask)
        else:
            # per-lane running max and sum, reduced once at the end; vocab > BLOCK, so the
            # first tile is full and gives every lane a finite max (no -inf - -inf)
            m = tl.full((BLOCK,), -float("inf"), tl.float32)
            s = tl.zeros((BLOCK,), tl.float32)
            for start in range(0, vocab, BLOCK):
                x = tl.load(
                    x_row + start + cols, mask=start + cols < vocab, other=-float("inf")
                ).to(tl.float32)
                m_new = tl.maximum(m, x)
                s = s * tl.exp(m - m_new) + tl.exp(x - m_new)
                m = m_new
            m_row = tl.max(m, 0)
            lse = m_row + tl.log(tl.sum(s * tl.exp(m - m_row), 0))
            if WRITE_GRAD:
                for start in range(0, vocab, BLOCK):
                    mask = start + cols < vocab
                    x = tl.load(x_row + start + cols, mask=mask, other=0.0).to(tl.float32)
                    p = tl.exp(x - lse)
                    g = tl.where(start + cols == target, p - 1.0, p)
                    tl.store(x_row + start + cols, g.to(x_ptr.dtype.element_ty), mask=mask)
        tl.store(loss_ptr + row, lse - picked)
