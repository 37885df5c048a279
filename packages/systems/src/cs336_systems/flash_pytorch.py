"""FlashAttention-2 in plain PyTorch: the algorithm, tile by tile, without a GPU kernel.

Forward (Dao 2023, Algorithm 1): for each query tile, walk the key tiles keeping a running
row max ``m``, a running softmax denominator ``l`` and an unnormalised output; rescale
both by ``exp(m_old - m_new)`` whenever the max grows. Only ``(B_q, B_k)`` scores exist
at a time. The log-sum-exp ``L = m + log l`` is saved instead of the attention matrix.

Backward recomputes ``P = exp(S - L)`` one key tile at a time, with ``D = rowsum(dO ∘ O)``
(which equals ``rowsum(P ∘ dP)``): ``dS = P ∘ (dP - D)``.

Inputs are ``(..., seq, d)``; ``is_causal=True`` needs as many queries as keys and lets
query i see keys ``<= i``. 16-bit inputs are computed in float32.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from cs336_common.nn.functional import check_attention_inputs

Q_TILE = 64
K_TILE = 64


def _compute_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.promote_types(dtype, torch.float32)


def _tile_forward(q: Tensor, K: Tensor, V: Tensor, q0: int, is_causal: bool, scale: float):
    """One query tile ``q`` (rows q0..) against all key tiles it may see -> (O tile, L tile)."""
    n_keys = K.shape[-2]
    k_end = min(n_keys, q0 + q.shape[-2]) if is_causal else n_keys  # later tiles: all masked
    m = q.new_full(q.shape[:-1], -math.inf)
    l = q.new_zeros(q.shape[:-1])
    acc = torch.zeros_like(q)
    for k0 in range(0, k_end, K_TILE):
        s = (q @ K[..., k0 : k0 + K_TILE, :].transpose(-2, -1)) * scale
        if is_causal and k0 + K_TILE > q0:  # only tiles that cross the diagonal need a mask
            rows = torch.arange(q0, q0 + q.shape[-2], device=q.device)
            cols = torch.arange(k0, k0 + s.shape[-1], device=q.device)
            s = s.masked_fill(cols[None, :] > rows[:, None], -math.inf)
        m_new = torch.maximum(m, s.amax(dim=-1))
        p = torch.exp(s - m_new[..., None])
        alpha = torch.exp(m - m_new)
        l = alpha * l + p.sum(dim=-1)
        acc = alpha[..., None] * acc + p @ V[..., k0 : k0 + K_TILE, :]
        m = m_new
    return acc / l[..., None], m + torch.log(l)


class FlashAttentionPyTorch(torch.autograd.Function):
    """``O = softmax(Q Kᵀ / sqrt(d)) V`` saving only Q, K, V, O and L (shape (..., n))."""

    @staticmethod
    def forward(ctx, Q: Tensor, K: Tensor, V: Tensor, is_causal: bool = False) -> Tensor:
        check_attention_inputs(Q, K, V, is_causal)
        dt = _compute_dtype(Q.dtype)
        q_all, K32, V32 = Q.to(dt), K.to(dt), V.to(dt)
        scale = 1.0 / math.sqrt(Q.shape[-1])
        tiles = [
            _tile_forward(q_all[..., q0 : q0 + Q_TILE, :], K32, V32, q0, is_causal, scale)
            for q0 in range(0, Q.shape[-2], Q_TILE)
        ]
        O = torch.cat([o for o, _ in tiles], dim=-2).to(Q.dtype)
        L = torch.cat([lse for _, lse in tiles], dim=-1)
        ctx.save_for_backward(Q, K, V, O, L)
        ctx.is_causal = is_causal
        return O

    @staticmethod
    def backward(ctx, dO: Tensor):
        Q, K, V, O, L = ctx.saved_tensors
        in_dtypes = (Q.dtype, K.dtype, V.dtype)
        dt = _compute_dtype(Q.dtype)
        Q, K, V, O, dO = (t.to(dt) for t in (Q, K, V, O, dO))
        scale = 1.0 / math.sqrt(Q.shape[-1])
        D = (dO * O).sum(dim=-1)
        dQ, dK, dV = torch.zeros_like(Q), torch.zeros_like(K), torch.zeros_like(V)
        rows = torch.arange(Q.shape[-2], device=Q.device)
        for k0 in range(0, K.shape[-2], K_TILE):
            k, v = K[..., k0 : k0 + K_TILE, :], V[..., k0 : k0 + K_TILE, :]
            q0 = k0 if ctx.is_causal else 0  # earlier queries cannot see these keys
            q, do = Q[..., q0:, :], dO[..., q0:, :]
            s = (q @ k.transpose(-2, -1)) * scale
            if ctx.is_causal:
                cols = torch.arange(k0, k0 + k.shape[-2], device=Q.device)
                s = s.masked_fill(cols[None, :] > rows[q0:, None], -math.inf)
            p = torch.exp(s - L[..., q0:, None])
            dV[..., k0 : k0 + K_TILE, :] = p.transpose(-2, -1) @ do
            ds = p * (do @ v.transpose(-2, -1) - D[..., q0:, None])
            dK[..., k0 : k0 + K_TILE, :] = (ds.transpose(-2, -1) @ q) * scale
            dQ[..., q0:, :] += (ds @ k) * scale
        return *(g.to(t) for g, t in zip((dQ, dK, dV), in_dtypes, strict=True)), None
