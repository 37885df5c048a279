"""Fused element-wise ops of the engine's decode step (inference only).

A decode step of a small model is hundreds of tiny kernels (RMSNorm alone is seven:
cast, square, mean, add, rsqrt, two products), each a few microseconds, which together
cost more than the matmuls. On a GPU each op here is one Triton kernel, computed in
float32 from 16- or 32-bit inputs:

- `add_rms_norm`: the residual add and the next RMSNorm in one pass;
- `rope_write_kv`: RoPE on the query and key of one token per row, and the key/value
  written straight into the step's cache slot (a device tensor, so a CUDA graph replays);
- `silu_mul`: SwiGLU's ``silu(gate) * up``.

Elsewhere (CPU, no Triton) each runs the model's own modules, so the engine's CPU
results and the training path are unchanged.
"""

from __future__ import annotations

import torch
from torch import Tensor

from cs336_common.nn.functional import silu
from cs336_common.nn.layers import RMSNorm
from cs336_common.nn.rope import RotaryPositionalEmbedding

try:
    import triton
    import triton.language as tl
except ImportError:  # no Triton (e.g. macOS): the PyTorch path serves
    triton = None


# True: the kernels run on any device's float32 tensors too (the tests run them on CPU,
# in Triton's interpreter)
INTERPRET_ON_CPU = False


def _fused(x: Tensor) -> bool:
    # the kernels compute in float32: float64 (the exact tests' dtype) keeps the model's ops
    if triton is None or x.dtype == torch.float64:
        return False
    return x.is_cuda or INTERPRET_ON_CPU


def add_rms_norm(x: Tensor, residual: Tensor | None, norm: RMSNorm) -> tuple[Tensor, Tensor]:
    """x, residual: (batch, d_model) -> (norm(h), h) with h = x + residual (h = x when
    residual is None): the pre-norm block's residual stream and the next norm's output."""
    if _fused(x):
        return _triton_add_rms_norm(x, residual, norm.weight, norm.eps)
    h = x if residual is None else x + residual
    return norm(h), h


def rope_write_kv(
    qkv: Tensor,
    positions: Tensor,
    rope: RotaryPositionalEmbedding,
    k_cache: Tensor,
    v_cache: Tensor,
    slot: Tensor,
) -> Tensor:
    """qkv: (batch, 3·d_model), one token per row, heads in order in each third;
    positions: int64 (batch,); k_cache/v_cache: (batch, heads, slots, d_head); slot:
    int64 (1,). Writes RoPE'd keys and the values at ``slot``; returns the RoPE'd
    queries, (batch, heads, 1, d_head)."""
    batch, heads, _, d_head = k_cache.shape
    if _fused(qkv) and d_head >= 2 and d_head & (d_head - 1) == 0:
        return _triton_rope_write_kv(qkv, positions, rope.cos, rope.sin, k_cache, v_cache, slot)
    q, k, v = (t.view(batch, 1, heads, d_head).transpose(1, 2) for t in qkv.chunk(3, dim=-1))
    pos = positions[:, None, None]  # (batch, 1, seq 1): the same for every head
    q, k = rope(q, pos), rope(k, pos)
    k_cache.index_copy_(2, slot, k)
    v_cache.index_copy_(2, slot, v)
    return q


def silu_mul(gate_up: Tensor) -> Tensor:
    """gate_up: (batch, 2·d_ff), gate then up -> silu(gate) * up, (batch, d_ff)."""
    if _fused(gate_up):
        return _triton_silu_mul(gate_up)
    gate, up = gate_up.chunk(2, dim=-1)
    return silu(gate) * up


def _triton_add_rms_norm(x, residual, weight, eps):
    batch, n = x.shape
    out = torch.empty_like(x)
    h = x if residual is None else torch.empty_like(x)
    r = x if residual is None else residual
    _add_rms_norm_kernel[(batch,)](
        x, r, weight, out, h, x.stride(0), r.stride(0), out.stride(0), h.stride(0), n, eps,
        HAS_RESIDUAL=residual is not None, BLOCK=triton.next_power_of_2(n), num_warps=4,
    )  # fmt: skip
    return out, h


def _triton_rope_write_kv(qkv, positions, cos, sin, k_cache, v_cache, slot):
    batch, heads, _, d_head = k_cache.shape
    q = qkv.new_empty(batch, heads, 1, d_head)
    _rope_write_kv_kernel[(batch, heads)](
        qkv, positions, cos, sin, q, k_cache, v_cache, slot,
        qkv.stride(0), cos.stride(0), q.stride(0), q.stride(1),
        k_cache.stride(0), k_cache.stride(1), k_cache.stride(2),
        v_cache.stride(0), v_cache.stride(1), v_cache.stride(2),
        heads * d_head, D=d_head, HALF=d_head // 2, num_warps=1,
    )  # fmt: skip
    return q


def _triton_silu_mul(gate_up):
    batch, n2 = gate_up.shape
    n = n2 // 2
    out = gate_up.new_empty(batch, n)
    block = min(1024, triton.next_power_of_2(n))
    _silu_mul_kernel[(batch, triton.cdiv(n, block))](
        gate_up, out, n, gate_up.stride(0), out.stride(0), BLOCK=block, num_warps=4
    )
    return out


if triton is not None:

    @triton.jit
    def _add_rms_norm_kernel(
        X, R, W, OUT, H, sx, sr, so, sh, n, eps,
        HAS_RESIDUAL: tl.constexpr, BLOCK: tl.constexpr,
    ):  # fmt: skip
        row = tl.program_id(0).to(tl.int64)
        cols = tl.arange(0, BLOCK)
        valid = cols < n
        x = tl.load(X + row * sx + cols, mask=valid, other=0.0).to(tl.float32)
        if HAS_RESIDUAL:
            r = tl.load(R + row * sr + cols, mask=valid, other=0.0).to(tl.float32)
            # the stream is stored in its dtype, and normed as stored (as the model does)
            h = (x + r).to(H.dtype.element_ty)
            tl.store(H + row * sh + cols, h, mask=valid)
            x = h.to(tl.float32)
        rstd = 1.0 / tl.sqrt(tl.sum(x * x, axis=0) / n + eps)
        w = tl.load(W + cols, mask=valid, other=0.0).to(tl.float32)
        tl.store(OUT + row * so + cols, (x * rstd * w).to(OUT.dtype.element_ty), mask=valid)

    @triton.jit
    def _rotate(src, c, s, dst, i):
        """Rotate the pairs (src[2i], src[2i+1]) by the angles of (c, s); store at dst."""
        x1 = tl.load(src + 2 * i).to(tl.float32)
        x2 = tl.load(src + 2 * i + 1).to(tl.float32)
        tl.store(dst + 2 * i, (x1 * c - x2 * s).to(dst.dtype.element_ty))
        tl.store(dst + 2 * i + 1, (x1 * s + x2 * c).to(dst.dtype.element_ty))

    @triton.jit
    def _rope_write_kv_kernel(
        QKV, POS, COS, SIN, Q, K, V, SLOT,
        sqkv, scos, sqb, sqh, skb, skh, skt, svb, svh, svt, d_model,
        D: tl.constexpr, HALF: tl.constexpr,
    ):  # fmt: skip
        b = tl.program_id(0).to(tl.int64)
        h = tl.program_id(1).to(tl.int64)
        i = tl.arange(0, HALF)
        pos = tl.load(POS + b)
        slot = tl.load(SLOT)
        c = tl.load(COS + pos * scos + i).to(tl.float32)
        s = tl.load(SIN + pos * scos + i).to(tl.float32)
        src = QKV + b * sqkv + h * D
        _rotate(src, c, s, Q + b * sqb + h * sqh, i)
        _rotate(src + d_model, c, s, K + b * skb + h * skh + slot * skt, i)
        j = tl.arange(0, D)
        v = tl.load(src + 2 * d_model + j)
        tl.store(V + b * svb + h * svh + slot * svt + j, v.to(V.dtype.element_ty))

    @triton.jit
    def _silu_mul_kernel(GU, OUT, n, sgu, so, BLOCK: tl.constexpr):
        row = tl.program_id(0).to(tl.int64)
        cols = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
        valid = cols < n
        g = tl.load(GU + row * sgu + cols, mask=valid, other=0.0).to(tl.float32)
        u = tl.load(GU + row * sgu + n + cols, mask=valid, other=0.0).to(tl.float32)
        out = g * tl.sigmoid(g) * u
        tl.store(OUT + row * so + cols, out.to(OUT.dtype.element_ty), mask=valid)
