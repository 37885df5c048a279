"""FlashAttention-2 as Triton kernels: one forward kernel, and a backward of two or three.

Forward: a program owns BLOCK_M queries of one (batch, head) and streams the key/value
tiles through an online softmax (the algorithm of systems' ``flash_pytorch.py``) in the
base-2 domain: the scale ``log2(e)/sqrt(d)`` is folded into the one multiply-add that
subtracts the running max, so ``exp`` becomes the cheaper ``exp2``. It writes O and the
natural-log log-sum-exp ``L``.

Backward (no atomics, so bitwise reproducible): ``D = rowsum(dO ∘ O)`` in a small kernel;
then one kernel where a program owns a key tile and loops over query tiles accumulating
dK and dV, and one where a program owns a query tile and loops over key tiles
accumulating dQ. Both recompute ``P = exp(S - L)``. (FlashAttention-2's single kernel
with atomic float32 dQ sums does two fewer products per tile; on an H200 it measured
slower here, with pointer atomics and with TMA bulk reductions alike: see the lab notes
in ``packages/systems/benchmarks/results/h200_flash/``.)

Causal attention skips the tiles above the diagonal, and only the tiles that cross the
diagonal pay for a mask: every loop below is split into an unmasked run of tiles and a
masked one. Any sequence length works (loads are masked past the end), head dims up to
128 are padded to a power of two (at least 16, tl.dot's minimum), and 16-bit inputs feed
the tensor cores with float32 accumulation.

For 16-bit inputs on Hopper and newer, the tiles a loop streams (K and V in the forward
and dQ kernels, Q and dO in the dK/dV kernel) come through TMA descriptors made inside the
kernel: the copy engine fetches each tile whole and fills zeros past the end, which frees
the registers and instructions of pointer arithmetic (with the tiles retuned for it,
forward+backward at the leaderboard shape went from 5.63 to 5.01 ms on an H200;
``CS336_FLASH_TMA=0`` turns it off). float32, other GPUs, the interpreter, and views
whose rows or heads do not start on 16-byte boundaries use masked pointer loads.

Tile sizes, warps and pipeline depth come from a short candidate list per kind of input
(``_SPACES``: 16-bit with d ≤ 32, d ≤ 64 or d > 64, TF32, exact fp32), measured on an H200
at long sequences (d ≤ 32: at the TinyStories training shape). The first candidate is
used as is; the others are timed only for sequences over 8192 tokens, where the kernels
run long enough for the few per cent between them to matter, once per kind and length
class, and Triton caches the pick on disk (``CS336_FLASH_AUTOTUNE=0`` always takes the
first). Under ``TRITON_INTERPRET=1`` (CPU tests) one small config is used.

Entry points: ``FlashAttentionTriton`` / ``flash_attention_triton`` (the systems
assignment's contract), ``flash_attention`` (the LM's ``"flash"`` backend, SDPA where
Triton cannot run) and ``flash_attention_rope`` (the LM's training path: causal attention
of the packed (batch, seq, 3, heads, d) projection with RoPE inside; the backward kernels
un-rotate dQ and dK in their epilogues and store into the packed gradient).
"""

from __future__ import annotations

import math
import os

import torch
import triton
import triton.language as tl
from torch import Tensor
from torch.nn import functional as F

from cs336_common.nn.functional import check_attention_inputs
from cs336_common.nn.rope import rotate_pairs

_LOG2E = 1.4426950408889634
# kernels may only read globals that are constexpr
LOG2E = tl.constexpr(_LOG2E)
LN2 = tl.constexpr(0.6931471805599453)
MAX_HEAD_DIM = 128
SUPPORTED_DTYPES = (torch.float32, torch.bfloat16, torch.float16)
_INTERPRET = os.environ.get("TRITON_INTERPRET") == "1"
_AUTOTUNE = os.environ.get("CS336_FLASH_AUTOTUNE", "1") != "0"
_TMA = os.environ.get("CS336_FLASH_TMA", "1") != "0"
_LONG = 2  # the length class (over 8192 tokens) where candidates are timed

# Candidates (block_a, block_b, num_warps, num_stages[, maxnreg]) per kernel and kind of
# input, the measured best first (packages/systems/benchmarks/flash_configs.py and the
# interleaved rounds in packages/systems/benchmarks/results/h200_flash/NOTES.md; H200,
# (16, 1, 16384, 64) and (4, 1, 16384, 128) bf16 causal, TMA loads; d <= 32: a sweep at the
# TinyStories training shape (128, 16, 256, 32), where smaller tiles win). maxnreg 168 caps
# a 4-warp program's registers so that three fit on an SM instead of two: one program's
# softmax then overlaps another's products.
# Constraints the loops rely on: BLOCK_M % BLOCK_N == 0 (forward and dQ: the masked
# diagonal run starts on a key-tile boundary) and BLOCK_N1 % BLOCK_M1 == 0 (dK/dV).
# float32 gets one small config: exact-fp32 products unroll into CUDA-core code whose
# compile time grows with the tile. For exact fp32, 32 x 32 tiles against the earlier
# (64, 32)/(32, 64) at (2, 4, 3000, d) causal, first call (compile) and fwd+bwd after it,
# H200: d 128 15 s / 12 ms instead of 35 s / 118 ms (the larger tiles spilled), d 64
# 8 s / 8.5 ms instead of 12 s / 16 ms.
_SPACES = {
    "fwd": {
        "16bit_d32": [(64, 32, 4, 3), (128, 128, 4, 3), (128, 64, 8, 4)],
        "16bit_d64": [(128, 128, 4, 3), (128, 64, 8, 4)],
        "16bit_d128": [(128, 128, 8, 3), (128, 64, 8, 3)],
        "tf32": [(64, 32, 4, 3)],
        "ieee": [(32, 32, 4, 2)],
    },
    "kv": {
        "16bit_d32": [(32, 64, 4, 2), (64, 64, 4, 3, 168), (32, 128, 4, 3)],
        "16bit_d64": [(64, 64, 4, 3, 168), (32, 128, 4, 3)],
        "16bit_d128": [(64, 128, 8, 3), (64, 64, 4, 2)],
        "tf32": [(32, 64, 4, 3)],
        "ieee": [(32, 32, 4, 2)],
    },
    "dq": {
        "16bit_d32": [(64, 32, 4, 3), (128, 64, 8, 4), (128, 64, 4, 3)],
        "16bit_d64": [(128, 64, 8, 4), (128, 64, 4, 3)],
        "16bit_d128": [(128, 64, 8, 4), (128, 64, 8, 3)],
        "tf32": [(64, 32, 4, 3)],
        "ieee": [(32, 32, 4, 2)],
    },
}
_BLOCK_NAMES = {"fwd": ("BLOCK_M", "BLOCK_N"), "kv": ("BLOCK_M1", "BLOCK_N1"),
                "dq": ("BLOCK_M2", "BLOCK_N2")}  # fmt: skip
_INTERPRETER_BLOCKS = {"fwd": (32, 16), "kv": (16, 32), "dq": (32, 16)}


def _space_kind(dtype: torch.dtype, block_d: int, precision: str) -> str:
    if dtype == torch.float32:
        return precision
    return "16bit_d32" if block_d <= 32 else "16bit_d64" if block_d <= 64 else "16bit_d128"


def _config(kernel: str, a: int, b: int, warps: int, stages: int, maxnreg=None) -> triton.Config:
    names = _BLOCK_NAMES[kernel]
    return triton.Config(
        {names[0]: a, names[1]: b}, num_warps=warps, num_stages=stages, maxnreg=maxnreg
    )


def _candidates(kernel: str):
    """Every candidate of one kernel (what the autotuner holds), and the pruning function
    that keeps those of the call's kind of input."""
    if _INTERPRET:
        return [_config(kernel, *_INTERPRETER_BLOCKS[kernel], 1, 1)], None

    def for_call(configs, nargs, **meta):
        kind = _space_kind(nargs["Q"].dtype, meta["BLOCK_D"], meta["DOT_PRECISION"])
        space = _SPACES[kernel][kind]
        tune = _AUTOTUNE and max(nargs["Q_CLASS"], nargs["KV_CLASS"]) == _LONG
        return [_config(kernel, *c) for c in (space if tune else space[:1])]

    every = {c for space in _SPACES[kernel].values() for c in space}
    # two or more, so that the autotuner consults the pruning function at all
    return [_config(kernel, *c) for c in sorted(every)], {"early_config_prune": for_call}


def _quick_bench(kernel_call, quantiles):
    # Autotuning runs once per length class; short timing windows keep it to seconds
    # while still ranking configs whose times differ by more than noise.
    return triton.testing.do_bench(kernel_call, warmup=5, rep=20, quantiles=quantiles)


def _autotune(kernel: str):
    configs, prune = _candidates(kernel)
    return triton.autotune(
        configs=configs,
        key=["Q_CLASS", "KV_CLASS", "HEAD_DIM", "IS_CAUSAL", "DOT_PRECISION", "USE_TMA"],
        prune_configs_by=prune,
        do_bench=_quick_bench,
        cache_results=True,
    )


@triton.jit
def _row_mask(offs_rows, n_rows, offs_d, HEAD_DIM: tl.constexpr, BLOCK_D: tl.constexpr):
    """Rows below ``n_rows`` (and, only when the head dim is padded, columns below it)."""
    if HEAD_DIM == BLOCK_D:  # compile-time branch: one mask shape or the other
        mask = offs_rows[:, None] < n_rows
    else:
        mask = (offs_rows[:, None] < n_rows) & (offs_d[None, :] < HEAD_DIM)
    return mask


@triton.jit
def _load_rows(base, offs_rows, stride_row, n_rows, offs_d, HEAD_DIM: tl.constexpr,
               BLOCK_D: tl.constexpr):  # fmt: skip
    """Rows ``offs_rows`` of a (n_rows, HEAD_DIM) matrix, zeros past either end."""
    ptrs = base + offs_rows[:, None] * stride_row + offs_d[None, :]
    return tl.load(ptrs, mask=_row_mask(offs_rows, n_rows, offs_d, HEAD_DIM, BLOCK_D), other=0.0)


@triton.jit
def _source(base, n_rows, stride_row, HEAD_DIM: tl.constexpr, BLOCK_ROWS: tl.constexpr,
            BLOCK_D: tl.constexpr, USE_TMA: tl.constexpr):  # fmt: skip
    """What ``_tile`` reads a streamed (n_rows, HEAD_DIM) matrix from: a TMA descriptor
    (the copy engine fetches whole tiles and fills zeros past either end), or the pointer."""
    if USE_TMA:
        src = tl.make_tensor_descriptor(
            base, shape=[n_rows, HEAD_DIM], strides=[stride_row, 1],
            block_shape=[BLOCK_ROWS, BLOCK_D],
        )  # fmt: skip
    else:
        src = base
    return src


@triton.jit
def _tile(src, start, offs_rows, stride_row, n_rows, offs_d, HEAD_DIM: tl.constexpr,
          BLOCK_D: tl.constexpr, USE_TMA: tl.constexpr):  # fmt: skip
    """Rows ``start + offs_rows`` of a matrix given by ``_source``."""
    if USE_TMA:
        tile = src.load([start, 0])
    else:
        tile = _load_rows(src, offs_rows, stride_row, n_rows, offs_d, HEAD_DIM, BLOCK_D)
    return tile


@triton.jit
def _unrotate(x, Cos, Sin, offs_rows, n_rows, HEAD_DIM: tl.constexpr, BLOCK_D: tl.constexpr):
    """Gradient w.r.t. RoPE-rotated rows -> w.r.t. the rows before the rotation: each pair
    ``(x[2i], x[2i+1])`` of row r turned back by its angle (the rotation's transpose).
    ``Cos``/``Sin``: (positions, HEAD_DIM / 2) float32 tables; row r is position r."""
    offs_h = tl.arange(0, BLOCK_D // 2)
    mask = (offs_rows[:, None] < n_rows) & (offs_h[None, :] < HEAD_DIM // 2)
    idx = offs_rows[:, None] * (HEAD_DIM // 2) + offs_h[None, :]
    c = tl.load(Cos + idx, mask=mask, other=0.0)
    s = tl.load(Sin + idx, mask=mask, other=0.0)
    x1, x2 = tl.split(tl.reshape(x, (x.shape[0], BLOCK_D // 2, 2)))
    return tl.reshape(tl.join(x1 * c + x2 * s, x2 * c - x1 * s), (x.shape[0], BLOCK_D))


@triton.jit
def _fwd_tiles(
    acc, l_i, m_i, q, K, V, skn, svn, offs_m, offs_d, N_KV, lo, hi, qk_scale,
    HEAD_DIM: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_N: tl.constexpr, MASK: tl.constexpr,
    IS_CAUSAL: tl.constexpr, DOT_PRECISION: tl.constexpr, USE_TMA: tl.constexpr,
):  # fmt: skip
    """Online-softmax update of (acc, l, m) with key tiles ``lo .. hi``; m is in log2 units."""
    for start_n in range(lo, hi, BLOCK_N):
        offs_n = start_n + tl.arange(0, BLOCK_N)
        k = _tile(K, start_n, offs_n, skn, N_KV, offs_d, HEAD_DIM, BLOCK_D, USE_TMA)
        v = _tile(V, start_n, offs_n, svn, N_KV, offs_d, HEAD_DIM, BLOCK_D, USE_TMA)
        qk = tl.dot(q, tl.trans(k), input_precision=DOT_PRECISION)
        if MASK:
            keep = offs_m[:, None] >= offs_n[None, :] if IS_CAUSAL else (offs_n < N_KV)[None, :]
            qk = tl.where(keep, qk * qk_scale, -float("inf"))
            m_new = tl.maximum(m_i, tl.max(qk, 1))
            p = tl.math.exp2(qk - m_new[:, None])
        else:  # the scale rides on the multiply-add that subtracts the max
            m_new = tl.maximum(m_i, tl.max(qk, 1) * qk_scale)
            p = tl.math.exp2(qk * qk_scale - m_new[:, None])
        alpha = tl.math.exp2(m_i - m_new)
        l_i = l_i * alpha + tl.sum(p, 1)
        acc = tl.dot(p.to(v.dtype), v, acc * alpha[:, None], input_precision=DOT_PRECISION)
        m_i = m_new
    return acc, l_i, m_i


@_autotune("fwd")
@triton.jit
def _flash_fwd(
    Q, K, V, O, L,
    sqz, sqh, sqn, skz, skh, skn, svz, svh, svn, soz, soh, son,
    H, N_Q, N_KV, Q_CLASS, KV_CLASS, qk_scale,
    HEAD_DIM: tl.constexpr, BLOCK_D: tl.constexpr, IS_CAUSAL: tl.constexpr,
    DOT_PRECISION: tl.constexpr, USE_TMA: tl.constexpr, BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
):  # fmt: skip
    # Causal query tiles further down have more keys to visit: launch them first so the
    # long programs do not start last and leave the GPU half idle at the end.
    pid_m = tl.num_programs(0) - 1 - tl.program_id(0) if IS_CAUSAL else tl.program_id(0)
    zh = tl.program_id(1)
    z, h = (zh // H).to(tl.int64), (zh % H).to(tl.int64)
    Q += z * sqz + h * sqh
    K += z * skz + h * skh
    V += z * svz + h * svh
    O += z * soz + h * soh
    start_m = pid_m * BLOCK_M
    offs_m = start_m + tl.arange(0, BLOCK_M)
    offs_d = tl.arange(0, BLOCK_D)
    q = _load_rows(Q, offs_m, sqn, N_Q, offs_d, HEAD_DIM, BLOCK_D)
    K = _source(K, N_KV, skn, HEAD_DIM, BLOCK_N, BLOCK_D, USE_TMA)
    V = _source(V, N_KV, svn, HEAD_DIM, BLOCK_N, BLOCK_D, USE_TMA)
    m_i = tl.full([BLOCK_M], -float("inf"), tl.float32)
    l_i = tl.zeros([BLOCK_M], tl.float32)
    acc = tl.zeros([BLOCK_M, BLOCK_D], tl.float32)
    if IS_CAUSAL:  # keys below the diagonal need no mask; the diagonal run does
        lo, hi = start_m, tl.minimum(start_m + BLOCK_M, N_KV)
    else:  # only a ragged last key tile needs a mask
        lo = (N_KV // BLOCK_N) * BLOCK_N
        hi = N_KV
    acc, l_i, m_i = _fwd_tiles(
        acc, l_i, m_i, q, K, V, skn, svn, offs_m, offs_d, N_KV, 0, lo, qk_scale,
        HEAD_DIM, BLOCK_D, BLOCK_N, False, IS_CAUSAL, DOT_PRECISION, USE_TMA,
    )  # fmt: skip
    acc, l_i, m_i = _fwd_tiles(
        acc, l_i, m_i, q, K, V, skn, svn, offs_m, offs_d, N_KV, lo, hi, qk_scale,
        HEAD_DIM, BLOCK_D, BLOCK_N, True, IS_CAUSAL, DOT_PRECISION, USE_TMA,
    )  # fmt: skip
    out = acc / l_i[:, None]
    o_ptrs = O + offs_m[:, None] * son + offs_d[None, :]
    tl.store(o_ptrs, out.to(O.dtype.element_ty),
             mask=_row_mask(offs_m, N_Q, offs_d, HEAD_DIM, BLOCK_D))  # fmt: skip
    tl.store(L + zh.to(tl.int64) * N_Q + offs_m, (m_i + tl.math.log2(l_i)) * LN2, mask=offs_m < N_Q)


@triton.jit
def _bwd_delta(
    O, dO, Delta, soz, soh, son, sdz, sdh, sdn, H, N_Q,
    HEAD_DIM: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_M: tl.constexpr,
):  # fmt: skip
    """D = rowsum(dO ∘ O), float32, one value per query."""
    zh = tl.program_id(1)
    z, h = (zh // H).to(tl.int64), (zh % H).to(tl.int64)
    offs_m = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_d = tl.arange(0, BLOCK_D)
    o = _load_rows(O + z * soz + h * soh, offs_m, son, N_Q, offs_d, HEAD_DIM, BLOCK_D)
    do = _load_rows(dO + z * sdz + h * sdh, offs_m, sdn, N_Q, offs_d, HEAD_DIM, BLOCK_D)
    delta = tl.sum(o.to(tl.float32) * do.to(tl.float32), 1)
    tl.store(Delta + zh.to(tl.int64) * N_Q + offs_m, delta, mask=offs_m < N_Q)


@triton.jit
def _kv_tiles(
    dk, dv, k, v, Q, dO, L, Delta, sqn, sdn, offs_n, offs_d, N_Q, lo, hi, qk_scale,
    HEAD_DIM: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_M1: tl.constexpr,
    MASK: tl.constexpr, DOT_PRECISION: tl.constexpr, USE_TMA: tl.constexpr,
):  # fmt: skip
    """Accumulate dK, dV of one key tile over query tiles ``lo .. hi`` (transposed: Pᵀ, dSᵀ,
    so both enter the products from registers)."""
    for start_m in range(lo, hi, BLOCK_M1):
        offs_m = start_m + tl.arange(0, BLOCK_M1)
        q = _tile(Q, start_m, offs_m, sqn, N_Q, offs_d, HEAD_DIM, BLOCK_D, USE_TMA)
        do = _tile(dO, start_m, offs_m, sdn, N_Q, offs_d, HEAD_DIM, BLOCK_D, USE_TMA)
        # L = +inf past the last query makes P = 0 there, so padded rows contribute nothing
        lse2 = tl.load(L + offs_m, mask=offs_m < N_Q, other=float("inf")) * LOG2E
        delta = tl.load(Delta + offs_m, mask=offs_m < N_Q, other=0.0)
        qk_t = tl.dot(k, tl.trans(q), input_precision=DOT_PRECISION)
        p_t = tl.math.exp2(qk_t * qk_scale - lse2[None, :])
        if MASK:
            p_t = tl.where(offs_m[None, :] >= offs_n[:, None], p_t, 0.0)
        dv = tl.dot(p_t.to(do.dtype), do, dv, input_precision=DOT_PRECISION)
        dp_t = tl.dot(v, tl.trans(do), input_precision=DOT_PRECISION)
        ds_t = p_t * (dp_t - delta[None, :])
        dk = tl.dot(ds_t.to(q.dtype), q, dk, input_precision=DOT_PRECISION)
    return dk, dv


@_autotune("kv")
@triton.jit
def _flash_bwd_kv(
    Q, K, V, dO, L, Delta, dK, dV, Cos, Sin,
    sqz, sqh, sqn, skz, skh, skn, svz, svh, svn, sdz, sdh, sdn, sgz, sgh, sgn,
    H, N_Q, N_KV, Q_CLASS, KV_CLASS, qk_scale, sm_scale,
    HEAD_DIM: tl.constexpr, BLOCK_D: tl.constexpr, IS_CAUSAL: tl.constexpr,
    DOT_PRECISION: tl.constexpr, USE_TMA: tl.constexpr, ROPE: tl.constexpr,
    BLOCK_M1: tl.constexpr, BLOCK_N1: tl.constexpr,
):  # fmt: skip
    # causal: the first key tiles are seen by the most queries and come first in launch order
    zh = tl.program_id(1)
    z, h = (zh // H).to(tl.int64), (zh % H).to(tl.int64)
    start_n = tl.program_id(0) * BLOCK_N1
    offs_n = start_n + tl.arange(0, BLOCK_N1)
    offs_d = tl.arange(0, BLOCK_D)
    k = _load_rows(K + z * skz + h * skh, offs_n, skn, N_KV, offs_d, HEAD_DIM, BLOCK_D)
    v = _load_rows(V + z * svz + h * svh, offs_n, svn, N_KV, offs_d, HEAD_DIM, BLOCK_D)
    Q = _source(Q + z * sqz + h * sqh, N_Q, sqn, HEAD_DIM, BLOCK_M1, BLOCK_D, USE_TMA)
    dO = _source(dO + z * sdz + h * sdh, N_Q, sdn, HEAD_DIM, BLOCK_M1, BLOCK_D, USE_TMA)
    L += zh.to(tl.int64) * N_Q
    Delta += zh.to(tl.int64) * N_Q
    dk = tl.zeros([BLOCK_N1, BLOCK_D], tl.float32)
    dv = tl.zeros([BLOCK_N1, BLOCK_D], tl.float32)
    if IS_CAUSAL:  # queries before start_n never see this tile; the diagonal run is masked
        dk, dv = _kv_tiles(
            dk, dv, k, v, Q, dO, L, Delta, sqn, sdn, offs_n, offs_d, N_Q,
            start_n, tl.minimum(start_n + BLOCK_N1, N_Q), qk_scale,
            HEAD_DIM, BLOCK_D, BLOCK_M1, True, DOT_PRECISION, USE_TMA,
        )  # fmt: skip
        lo = start_n + BLOCK_N1
    else:
        lo = 0
    dk, dv = _kv_tiles(
        dk, dv, k, v, Q, dO, L, Delta, sqn, sdn, offs_n, offs_d, N_Q, lo, N_Q, qk_scale,
        HEAD_DIM, BLOCK_D, BLOCK_M1, False, DOT_PRECISION, USE_TMA,
    )  # fmt: skip
    dk *= sm_scale
    if ROPE:
        dk = _unrotate(dk, Cos, Sin, offs_n, N_KV, HEAD_DIM, BLOCK_D)
    # dK and dV share one layout (strides sg*)
    out_mask = _row_mask(offs_n, N_KV, offs_d, HEAD_DIM, BLOCK_D)
    out_offs = z * sgz + h * sgh + offs_n[:, None] * sgn + offs_d[None, :]
    tl.store(dK + out_offs, dk.to(dK.dtype.element_ty), mask=out_mask)
    tl.store(dV + out_offs, dv.to(dV.dtype.element_ty), mask=out_mask)


@triton.jit
def _dq_tiles(
    dq, q, do, lse2, delta, K, V, skn, svn, offs_m, offs_d, N_KV, lo, hi, qk_scale,
    HEAD_DIM: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_N2: tl.constexpr, MASK: tl.constexpr,
    IS_CAUSAL: tl.constexpr, DOT_PRECISION: tl.constexpr, USE_TMA: tl.constexpr,
):  # fmt: skip
    """Accumulate dQ of one query tile over key tiles ``lo .. hi``."""
    for start_n in range(lo, hi, BLOCK_N2):
        offs_n = start_n + tl.arange(0, BLOCK_N2)
        k = _tile(K, start_n, offs_n, skn, N_KV, offs_d, HEAD_DIM, BLOCK_D, USE_TMA)
        v = _tile(V, start_n, offs_n, svn, N_KV, offs_d, HEAD_DIM, BLOCK_D, USE_TMA)
        qk = tl.dot(q, tl.trans(k), input_precision=DOT_PRECISION)
        p = tl.math.exp2(qk * qk_scale - lse2[:, None])
        if MASK:
            keep = offs_m[:, None] >= offs_n[None, :] if IS_CAUSAL else (offs_n < N_KV)[None, :]
            p = tl.where(keep, p, 0.0)
        dp = tl.dot(do, tl.trans(v), input_precision=DOT_PRECISION)
        ds = p * (dp - delta[:, None])
        dq = tl.dot(ds.to(k.dtype), k, dq, input_precision=DOT_PRECISION)
    return dq


@_autotune("dq")
@triton.jit
def _flash_bwd_dq(
    Q, K, V, dO, L, Delta, dQ, Cos, Sin,
    sqz, sqh, sqn, skz, skh, skn, svz, svh, svn, sdz, sdh, sdn, sgz, sgh, sgn,
    H, N_Q, N_KV, Q_CLASS, KV_CLASS, qk_scale, sm_scale,
    HEAD_DIM: tl.constexpr, BLOCK_D: tl.constexpr, IS_CAUSAL: tl.constexpr,
    DOT_PRECISION: tl.constexpr, USE_TMA: tl.constexpr, ROPE: tl.constexpr,
    BLOCK_M2: tl.constexpr, BLOCK_N2: tl.constexpr,
):  # fmt: skip
    pid_m = tl.num_programs(0) - 1 - tl.program_id(0) if IS_CAUSAL else tl.program_id(0)
    zh = tl.program_id(1)
    z, h = (zh // H).to(tl.int64), (zh % H).to(tl.int64)
    start_m = pid_m * BLOCK_M2
    offs_m = start_m + tl.arange(0, BLOCK_M2)
    offs_d = tl.arange(0, BLOCK_D)
    q = _load_rows(Q + z * sqz + h * sqh, offs_m, sqn, N_Q, offs_d, HEAD_DIM, BLOCK_D)
    do = _load_rows(dO + z * sdz + h * sdh, offs_m, sdn, N_Q, offs_d, HEAD_DIM, BLOCK_D)
    row = zh.to(tl.int64) * N_Q + offs_m
    lse2 = tl.load(L + row, mask=offs_m < N_Q, other=float("inf")) * LOG2E
    delta = tl.load(Delta + row, mask=offs_m < N_Q, other=0.0)
    K = _source(K + z * skz + h * skh, N_KV, skn, HEAD_DIM, BLOCK_N2, BLOCK_D, USE_TMA)
    V = _source(V + z * svz + h * svh, N_KV, svn, HEAD_DIM, BLOCK_N2, BLOCK_D, USE_TMA)
    dq = tl.zeros([BLOCK_M2, BLOCK_D], tl.float32)
    if IS_CAUSAL:
        lo, hi = start_m, tl.minimum(start_m + BLOCK_M2, N_KV)
    else:
        lo = (N_KV // BLOCK_N2) * BLOCK_N2
        hi = N_KV
    dq = _dq_tiles(
        dq, q, do, lse2, delta, K, V, skn, svn, offs_m, offs_d, N_KV, 0, lo, qk_scale,
        HEAD_DIM, BLOCK_D, BLOCK_N2, False, IS_CAUSAL, DOT_PRECISION, USE_TMA,
    )  # fmt: skip
    dq = _dq_tiles(
        dq, q, do, lse2, delta, K, V, skn, svn, offs_m, offs_d, N_KV, lo, hi, qk_scale,
        HEAD_DIM, BLOCK_D, BLOCK_N2, True, IS_CAUSAL, DOT_PRECISION, USE_TMA,
    )  # fmt: skip
    dq *= sm_scale
    if ROPE:
        dq = _unrotate(dq, Cos, Sin, offs_m, N_Q, HEAD_DIM, BLOCK_D)
    out_offs = z * sgz + h * sgh + offs_m[:, None] * sgn + offs_d[None, :]
    out_mask = _row_mask(offs_m, N_Q, offs_d, HEAD_DIM, BLOCK_D)
    tl.store(dQ + out_offs, dq.to(dQ.dtype.element_ty), mask=out_mask)


def _as_4d(x: Tensor) -> Tensor:
    """(..., n, d) -> a (Z, H, n, d) view (a copy only if the last dim is strided)."""
    if x.stride(-1) != 1:
        x = x.contiguous()
    if x.ndim == 4:
        return x
    if x.ndim < 4:
        return x.reshape((1,) * (4 - x.ndim) + tuple(x.shape))
    return x.reshape(-1, *x.shape[-3:])


def _strides(x: Tensor) -> tuple[int, int, int]:
    return x.stride(0), x.stride(1), x.stride(2)


def _dot_precision(dtype: torch.dtype) -> str:
    # float32 follows torch's matmul setting: "highest" -> exact fp32, else TF32 tensor cores
    if dtype == torch.float32 and torch.get_float32_matmul_precision() == "highest":
        return "ieee"
    return "tf32"


def _check_triton_inputs(Q: Tensor, K: Tensor, V: Tensor) -> None:
    d = Q.shape[-1]
    if not 1 <= d <= MAX_HEAD_DIM:
        raise ValueError(f"FlashAttentionTriton supports head dims 1..{MAX_HEAD_DIM}; got {d}")
    if Q.dtype not in SUPPORTED_DTYPES or not Q.dtype == K.dtype == V.dtype:
        raise TypeError(
            f"FlashAttentionTriton needs Q, K, V of one dtype among {SUPPORTED_DTYPES}; "
            f"got {Q.dtype}, {K.dtype}, {V.dtype}"
        )
    if not (Q.is_cuda or _INTERPRET):
        raise RuntimeError(
            "FlashAttentionTriton needs CUDA tensors (or TRITON_INTERPRET=1 set before "
            "triton is imported, to run the kernels on the CPU)"
        )


def _forward(Q: Tensor, K: Tensor, V: Tensor, is_causal: bool) -> tuple[Tensor, Tensor]:
    """-> (O with Q's shape, L with Q's shape minus the head dim, float32)."""
    q = _as_4d(Q)
    O = torch.empty(Q.shape, device=Q.device, dtype=Q.dtype)
    L = torch.empty(Q.shape[:-1], device=Q.device, dtype=torch.float32)
    _launch_forward(q, _as_4d(K), _as_4d(V), O.view(q.shape), L, is_causal)
    return O, L


def _launch_forward(q: Tensor, k: Tensor, v: Tensor, o: Tensor, L: Tensor, is_causal: bool):
    """The forward kernel on (Z, H, n, d) views; writes ``o`` (any strides) and ``L``
    (contiguous (Z, H, n_q))."""
    Z, H, n_q, d = q.shape
    n_kv = k.shape[2]
    meta = _kernel_meta(d, is_causal, q.dtype, k, v)

    def grid(cfg):
        return (triton.cdiv(n_q, cfg["BLOCK_M"]), Z * H)

    _flash_fwd[grid](
        q, k, v, o, L, *_strides(q), *_strides(k), *_strides(v), *_strides(o),
        H, n_q, n_kv, *_length_classes(n_q, n_kv), _LOG2E / math.sqrt(d), **meta,
    )  # fmt: skip


# Under torch.compile the launches are custom operators, opaque calls with known output
# shapes instead of a trace into the Triton kernels. Eager calls skip the operator's
# dispatch: at short lengths the host time of a call is what the GPU waits on, and the
# dispatch was 40% of it (cProfile of forward+backward at (1, 1, 256, 64), H200).
_forward_op = torch.library.custom_op("cs336_common::flash_attention_fwd", mutates_args=())(
    _forward
)


@_forward_op.register_fake
def _(Q, K, V, is_causal):
    return Q.new_empty(Q.shape), Q.new_empty(Q.shape[:-1], dtype=torch.float32)


def _backward(
    Q: Tensor, K: Tensor, V: Tensor, O: Tensor, L: Tensor, dO: Tensor, is_causal: bool
) -> tuple[Tensor, Tensor, Tensor]:
    """-> (dQ, dK, dV), contiguous, in Q/K/V's shapes and dtype."""
    dQ, dK, dV = (torch.empty(t.shape, device=t.device, dtype=t.dtype) for t in (Q, K, V))
    _launch_backward(*(_as_4d(t) for t in (Q, K, V, O, dO.to(Q.dtype), dQ, dK, dV)), L, is_causal)
    return dQ, dK, dV


def _launch_backward(q, k, v, o, do, dq, dk, dv, L, is_causal, cos=None, sin=None):
    """The three backward kernels on (Z, H, n, d) views, writing ``dq``, ``dk``, ``dv``
    (any strides; ``dk`` and ``dv`` alike). With RoPE tables ``cos``/``sin``, q and k are
    the rotated vectors and dQ, dK come out w.r.t. the vectors before the rotation."""
    Z, H, n_q, d = q.shape
    n_kv = k.shape[2]
    meta = _kernel_meta(d, is_causal, q.dtype, q, k, v, do)
    delta = torch.empty((Z, H, n_q), device=q.device, dtype=torch.float32)
    block = 16 if _INTERPRET else 64
    _bwd_delta[(triton.cdiv(n_q, block), Z * H)](
        o, do, delta, *_strides(o), *_strides(do), H, n_q,
        HEAD_DIM=d, BLOCK_D=meta["BLOCK_D"], BLOCK_M=block,
    )  # fmt: skip
    rope = cos is not None
    tables = (cos, sin) if rope else (L, L)  # unread without RoPE
    loads = (*_strides(q), *_strides(k), *_strides(v), *_strides(do))
    scalars = (H, n_q, n_kv, *_length_classes(n_q, n_kv), _LOG2E / math.sqrt(d), 1 / math.sqrt(d))
    assert dk.stride() == dv.stride()

    def grid_kv(cfg):
        return (triton.cdiv(n_kv, cfg["BLOCK_N1"]), Z * H)

    def grid_q(cfg):
        return (triton.cdiv(n_q, cfg["BLOCK_M2"]), Z * H)

    _flash_bwd_kv[grid_kv](
        q, k, v, do, L, delta, dk, dv, *tables, *loads, *_strides(dk), *scalars, ROPE=rope, **meta
    )
    _flash_bwd_dq[grid_q](
        q, k, v, do, L, delta, dq, *tables, *loads, *_strides(dq), *scalars, ROPE=rope, **meta
    )


_backward_op = torch.library.custom_op("cs336_common::flash_attention_bwd", mutates_args=())(
    _backward
)


@_backward_op.register_fake
def _(Q, K, V, O, L, dO, is_causal):
    return Q.new_empty(Q.shape), K.new_empty(K.shape), V.new_empty(V.shape)


class FlashAttentionTriton(torch.autograd.Function):
    """Same contract as ``FlashAttentionPyTorch``: ``(..., n, d)`` inputs, saves Q, K, V, O, L."""

    @staticmethod
    def forward(ctx, Q: Tensor, K: Tensor, V: Tensor, is_causal: bool = False) -> Tensor:
        check_attention_inputs(Q, K, V, is_causal)
        _check_triton_inputs(Q, K, V)
        O, L = (_forward_op if torch.compiler.is_compiling() else _forward)(Q, K, V, is_causal)
        ctx.save_for_backward(Q, K, V, O, L)
        ctx.is_causal = is_causal
        return O

    @staticmethod
    def backward(ctx, dO: Tensor):
        backward = _backward_op if torch.compiler.is_compiling() else _backward
        return *backward(*ctx.saved_tensors, dO, ctx.is_causal), None


# ---- causal attention with RoPE on packed projections (the LM's training path) ---------
# The LM projects q, k, v with one GEMM into (batch, seq, 3, heads, d_head). Unfused, the
# backward then runs RoPE's backward on dQ and dK and copies dQ, dK, dV into that packed
# layout: three passes over the activations per layer. Here the backward kernels turn dQ
# and dK back through the rotation in their epilogues and store all three straight into
# the packed gradient, and the output is written as (batch, seq, heads, d_head), so that
# the output projection reads it without a transpose.


def _rope_forward(q: Tensor, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
    """Rotated q, k and v as (batch, seq, heads, d) -> (O (batch, seq, heads, d), L (batch,
    heads, seq) float32)."""
    b, s, h, d = q.shape
    O = torch.empty((b, s, h, d), device=q.device, dtype=q.dtype)
    L = torch.empty((b, h, s), device=q.device, dtype=torch.float32)
    _launch_forward(*(t.transpose(1, 2) for t in (q, k, v, O)), L, True)
    return O, L


_rope_forward_op = torch.library.custom_op(
    "cs336_common::flash_attention_rope_fwd", mutates_args=()
)(_rope_forward)


@_rope_forward_op.register_fake
def _(q, k, v):
    b, s, h, _ = q.shape
    return q.new_empty(q.shape), q.new_empty((b, h, s), dtype=torch.float32)


def _rope_backward(
    q: Tensor, k: Tensor, v: Tensor, O: Tensor, L: Tensor, dO: Tensor, cos: Tensor, sin: Tensor
) -> Tensor:
    """-> the gradient of the packed projections, (batch, seq, 3, heads, d)."""
    b, s, h, d = q.shape
    grad = torch.empty((b, s, 3, h, d), device=q.device, dtype=q.dtype)
    views = (t.transpose(1, 2) for t in (q, k, v, O, dO.to(q.dtype), *grad.unbind(2)))
    _launch_backward(*views, L, True, cos, sin)
    return grad


_rope_backward_op = torch.library.custom_op(
    "cs336_common::flash_attention_rope_bwd", mutates_args=()
)(_rope_backward)


@_rope_backward_op.register_fake
def _(q, k, v, O, L, dO, cos, sin):
    b, s, h, d = q.shape
    return q.new_empty((b, s, 3, h, d))


class _RopeAttention(torch.autograd.Function):
    @staticmethod
    def forward(ctx, qkv: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
        q, k, v = qkv.unbind(2)
        cos_h, sin_h = cos[:, None, :], sin[:, None, :]  # broadcast over heads
        q, k = rotate_pairs(q, cos_h, sin_h), rotate_pairs(k, cos_h, sin_h)
        compiling = torch.compiler.is_compiling()
        O, L = (_rope_forward_op if compiling else _rope_forward)(q, k, v)
        ctx.save_for_backward(q, k, v, O, L, cos, sin)
        return O

    @staticmethod
    def backward(ctx, dO: Tensor):
        backward = _rope_backward_op if torch.compiler.is_compiling() else _rope_backward
        return backward(*ctx.saved_tensors[:5], dO, *ctx.saved_tensors[5:]), None, None


def _length_classes(n_q: int, n_kv: int) -> tuple[int, int]:
    # Configs are tuned per length class (short / medium / long), so a sweep over lengths
    # or decoding with a growing KV cache does not re-tune at every length.
    return _length_class(n_q), _length_class(n_kv)


def _length_class(n: int) -> int:
    return 0 if n <= 1024 else 1 if n <= 8192 else _LONG


def _kernel_meta(d: int, is_causal: bool, dtype: torch.dtype, *streamed: Tensor) -> dict:
    """Compile-time arguments; ``streamed``: the (Z, H, n, d) views the loops read tile by
    tile, which go through TMA descriptors where the hardware allows."""
    return dict(
        HEAD_DIM=d,
        BLOCK_D=max(16, triton.next_power_of_2(d)),
        IS_CAUSAL=is_causal,
        DOT_PRECISION=_dot_precision(dtype),
        USE_TMA=bool(streamed) and _tma_ok(streamed),
    )


def _tma_ok(views) -> bool:
    """16-bit inputs (where it was measured) on Hopper or newer, with every per-head base
    address and row stride 16-byte aligned (what the copy engine requires)."""
    if _INTERPRET or not _TMA or not views[0].is_cuda or views[0].element_size() != 2:
        return False
    if torch.cuda.get_device_capability(views[0].device)[0] < 9:
        return False
    for x in views:
        size = x.element_size()
        if x.data_ptr() % 16 or any(s * size % 16 for s in x.stride()[:3]):
            return False
    _use_scratch_allocator()
    return True


def _use_scratch_allocator() -> None:
    # Descriptors made inside a kernel live in a global scratch buffer that Triton asks
    # the host to allocate at launch. The allocator is a context variable: set it on the
    # calling thread (autograd runs backward on its own threads).
    triton.set_allocator(_scratch)


def _scratch(size: int, alignment: int, stream) -> Tensor:
    return torch.empty(size, device="cuda", dtype=torch.int8)


def flash_attention_triton(q: Tensor, k: Tensor, v: Tensor, is_causal: bool = False) -> Tensor:
    """Functional form of ``FlashAttentionTriton.apply``."""
    return FlashAttentionTriton.apply(q, k, v, is_causal)


def _triton_usable(x: Tensor) -> bool:
    return (x.is_cuda or _INTERPRET) and x.dtype in SUPPORTED_DTYPES and x.shape[-1] <= MAX_HEAD_DIM


def flash_attention(q: Tensor, k: Tensor, v: Tensor, is_causal: bool) -> Tensor:
    """The LM's ``"flash"`` attention backend, on (batch, heads, seq, d_head): the Triton
    kernels where they run (CUDA, or the interpreter), else PyTorch's SDPA."""
    if _triton_usable(q):
        return FlashAttentionTriton.apply(q, k, v, is_causal)
    return F.scaled_dot_product_attention(q, k, v, is_causal=is_causal)


def flash_attention_rope(qkv: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """Causal self-attention of packed projections ``qkv`` (batch, seq, 3, heads, d_head),
    with RoPE applied to queries and keys at positions ``0 .. seq-1`` -> (batch, seq, heads,
    d_head). ``cos``, ``sin``: (seq, d_head / 2) float32 tables of the pairs' angles (as
    ``RotaryPositionalEmbedding`` holds them). The gradient w.r.t. ``qkv`` comes out packed
    like it. Off CUDA (and without the interpreter): the same math with PyTorch's SDPA."""
    if qkv.ndim != 5 or qkv.shape[2] != 3 or cos.shape != (qkv.shape[1], qkv.shape[-1] // 2):
        raise ValueError(
            f"flash_attention_rope expects qkv (batch, seq, 3, heads, d_head) and cos/sin "
            f"(seq, d_head/2); got qkv {tuple(qkv.shape)}, cos {tuple(cos.shape)}"
        )
    if _triton_usable(qkv):
        return _RopeAttention.apply(qkv, cos.float().contiguous(), sin.float().contiguous())
    q, k, v = (t.transpose(1, 2) for t in qkv.unbind(2))
    q, k = rotate_pairs(q, cos, sin), rotate_pairs(k, cos, sin)
    return F.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2)
