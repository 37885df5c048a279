"""The Triton kernel behind `linear_cross_entropy`: a chunk's logits in, each row's loss
out, and the gradient of the logits written over them.

A program owns one row and reads it once from DRAM. Two shapes of program; the first
call for each vocabulary size, dtype and device times the candidates (`_CANDIDATES`)
and keeps the fastest:

- resident: the whole row in registers (up to ``_RESIDENT_MAX`` classes) as two
  power-of-two pieces, so 10000 classes pad to 10240 lanes: max, sum of exponentials
  and the gradient from the values in hand, one ``exp`` a class;
- looped: an online max/sum-exp over tiles, then a second pass over the row, which the
  first left in L2 (its loads ask to keep the lines, the second pass's to drop them),
  that writes the gradient: two ``exp`` a class. At 32768 rows × 10k classes the
  special-function units' ``exp`` throughput (16 a clock per SM on Hopper) is a third
  of the time the memory needs, so exponentials are counted.

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
    import triton.testing
except ImportError:  # no Triton (e.g. macOS): the caller's torch path serves
    triton = None

_INTERPRET = os.environ.get("TRITON_INTERPRET") == "1"
_DTYPES = (torch.float32, torch.bfloat16, torch.float16)
# Longest row held in registers (padded to at most 16384 lanes: 32 fp32 values a
# thread at 16 warps).
_RESIDENT_MAX = 16384
# (row in registers?, tile of the looped program, warps)
_CANDIDATES = [
    (True, 0, 8),
    (True, 0, 16),
    (True, 0, 32),
    (False, 2048, 4),
    (False, 2048, 8),
    (False, 4096, 8),
]
_INTERPRETER_CANDIDATES = [(True, 0, 4), (False, 4096, 4)]
# The candidates are timed on a copy of this many rows of the first call's logits
# (62 rows per SM of an H200; 160 MB at 10k classes in bf16), not on a copy of them all.
_TUNE_ROWS = 8192
# Smaller calls take the first candidate untimed: compiling six kernels would cost more
# than it saves (and the tests' many small shapes would each pay for it).
_TUNE_MIN_LOGITS = 1 << 26
_picked: dict[tuple, tuple[bool, int, int]] = {}


def available(logits_like: Tensor) -> bool:
    """Whether the kernel can take logits of this tensor's device and dtype."""
    return (
        triton is not None and logits_like.dtype in _DTYPES and (logits_like.is_cuda or _INTERPRET)
    )


def softmax_xent_(logits: Tensor, targets: Tensor, loss: Tensor, write_grad: bool) -> None:
    """logits: (rows, vocab), unit stride along vocab; targets: (rows,) ids; loss:
    (rows,) float32, receives each row's loss. With ``write_grad`` the logits become
    ``softmax - onehot(target)``."""
    if logits.shape[0] == 0:
        return
    targets = targets.contiguous()
    _launch(logits, targets, loss, write_grad, _config(logits, targets, loss, write_grad))


def _launch(logits, targets, loss, write_grad, config) -> None:
    rows, vocab = logits.shape
    resident, block, warps = config
    head = 1 << (vocab.bit_length() - 1)
    tail = triton.next_power_of_2(vocab - head) if vocab > head else 0
    _softmax_xent_kernel[(rows,)](
        logits, targets, loss, logits.stride(0), vocab,
        HEAD=head, TAIL=tail, WRITE_GRAD=write_grad, RESIDENT=resident, BLOCK=block,
        num_warps=warps,
    )  # fmt: skip


def _config(logits, targets, loss, write_grad) -> tuple[bool, int, int]:
    """The fastest candidate for this vocabulary, dtype and device, timed once on a
    sample of the rows (the kernel's output is valid input again, so trials run in
    place on the copy). The row in registers where it fits, the looped program where
    the row is longer than its tile; the interpreter, CUDA graph capture and calls under
    ``_TUNE_MIN_LOGITS`` take the first that fits, untimed."""
    vocab = logits.shape[1]
    key = (logits.device, logits.dtype, vocab, write_grad)
    if key in _picked:
        return _picked[key]
    fits = [
        c
        for c in (_INTERPRETER_CANDIDATES if _INTERPRET else _CANDIDATES)
        if (vocab <= _RESIDENT_MAX if c[0] else vocab > c[1])
    ]
    capturing = logits.is_cuda and torch.cuda.is_current_stream_capturing()
    if _INTERPRET or len(fits) == 1 or capturing or logits.numel() < _TUNE_MIN_LOGITS:
        return fits[0]
    rows = min(logits.shape[0], _TUNE_ROWS)
    sample, t, out = logits[:rows].clone(), targets[:rows], loss[:rows]
    times = [
        triton.testing.do_bench(
            lambda c=c: _launch(sample, t, out, write_grad, c), return_mode="median"
        )
        for c in fits
    ]
    _picked[key] = fits[times.index(min(times))]
    return _picked[key]


if triton is not None:

    @triton.jit
    def _softmax_xent_kernel(
        x_ptr,
        t_ptr,
        loss_ptr,
        stride,
        vocab,
        HEAD: tl.constexpr,
        TAIL: tl.constexpr,
        WRITE_GRAD: tl.constexpr,
        RESIDENT: tl.constexpr,
        BLOCK: tl.constexpr,
    ):
        row = tl.program_id(0).to(tl.int64)
        x_row = x_ptr + row * stride
        target = tl.load(t_ptr + row)
        # read before the row is overwritten by its gradient
        picked = tl.load(x_row + target).to(tl.float32)
        if RESIDENT:
            # the row as two power-of-two pieces, HEAD <= vocab (no mask) and a masked
            # TAIL: 10000 classes pad to 10240 lanes, not 16384 (one exp per lane)
            cols = tl.arange(0, HEAD)
            x = tl.load(x_row + cols, eviction_policy="evict_first").to(tl.float32)
            m = tl.max(x, 0)
            if TAIL > 0:
                cols_t = HEAD + tl.arange(0, TAIL)
                mask_t = cols_t < vocab
                y = tl.load(
                    x_row + cols_t, mask=mask_t, other=-float("inf"), eviction_policy="evict_first"
                ).to(tl.float32)
                m = tl.maximum(m, tl.max(y, 0))
            e = tl.exp(x - m)
            total = tl.sum(e, 0)
            if TAIL > 0:
                f = tl.exp(y - m)
                total += tl.sum(f, 0)
            lse = m + tl.log(total)
            if WRITE_GRAD:
                r = 1.0 / total
                g = tl.where(cols == target, e * r - 1.0, e * r)
                tl.store(x_row + cols, g.to(x_ptr.dtype.element_ty))
                if TAIL > 0:
                    g = tl.where(cols_t == target, f * r - 1.0, f * r)
                    tl.store(x_row + cols_t, g.to(x_ptr.dtype.element_ty), mask=mask_t)
        else:
            cols = tl.arange(0, BLOCK)
            m = -float("inf")  # online max and sum of exponentials over the tiles
            total = 0.0
            for start in range(0, vocab, BLOCK):
                x = tl.load(
                    x_row + start + cols,
                    mask=start + cols < vocab,
                    other=-float("inf"),
                    eviction_policy="evict_last",
                ).to(tl.float32)
                m_new = tl.maximum(m, tl.max(x, 0))
                total = total * tl.exp(m - m_new) + tl.sum(tl.exp(x - m_new), 0)
                m = m_new
            lse = m + tl.log(total)
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
