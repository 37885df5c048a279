"""Stateless math of the model: SiLU, a numerically stable softmax, attention.

Written with plain tensor ops (no ``F.softmax`` / ``F.scaled_dot_product_attention``),
so every step is visible; the tests compare them with PyTorch's own kernels.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


def silu(x: Tensor) -> Tensor:
    """SiLU (swish): ``x * sigmoid(x)``, elementwise."""
    return x * torch.sigmoid(x)


def softmax(x: Tensor, dim: int) -> Tensor:
    """Softmax along ``dim``; subtracting the max first keeps ``exp`` from overflowing.

    16-bit inputs are computed in float32 (as autocast does for ``F.softmax``) and the
    result is returned in the input dtype."""
    in_dtype = x.dtype
    if x.element_size() < 4:
        x = x.float()
    x = x - x.amax(dim=dim, keepdim=True)
    e = torch.exp(x)
    return (e / e.sum(dim=dim, keepdim=True)).to(in_dtype)


def scaled_dot_product_attention(
    Q: Tensor, K: Tensor, V: Tensor, mask: Tensor | None = None
) -> Tensor:
    """``softmax(Q Kᵀ / sqrt(d_k)) V``.

    Q: (..., n, d_k), K: (..., m, d_k), V: (..., m, d_v) -> (..., n, d_v).
    ``mask``: boolean, broadcastable to (..., n, m); True means "may attend".
    Every query row must be allowed at least one key.
    """
    # scaling Q (n·d_k values) is cheaper than scaling the scores (n·m values)
    scores = (Q * (1.0 / math.sqrt(Q.shape[-1]))) @ K.transpose(-2, -1)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    return softmax(scores, dim=-1) @ V


def causal_mask(n: int, m: int, device: torch.device | None = None) -> Tensor:
    """(n, m) boolean mask for n queries that are the LAST n of m positions
    (bottom-right aligned): query i sees keys ``j <= i + m - n``."""
    q = torch.arange(m - n, m, device=device)
    k = torch.arange(m, device=device)
    return k[None, :] <= q[:, None]


def check_attention_inputs(Q: Tensor, K: Tensor, V: Tensor, is_causal: bool) -> None:
    """Shape checks of the FlashAttention kernels (the Triton one here, systems' tiled
    PyTorch one): clear errors, not asserts."""
    if (
        Q.ndim < 2
        or Q.shape[:-2] != K.shape[:-2]
        or Q.shape[-1] != K.shape[-1]
        or K.shape[:-1] != V.shape[:-1]
    ):
        raise ValueError(
            f"FlashAttention expects Q (..., n, d), K (..., m, d), V (..., m, d); "
            f"got Q {tuple(Q.shape)}, K {tuple(K.shape)}, V {tuple(V.shape)}"
        )
    if V.shape[-1] != Q.shape[-1]:
        raise ValueError(f"V's head dim {V.shape[-1]} must equal Q's {Q.shape[-1]}")
    if is_causal and Q.shape[-2] != K.shape[-2]:
        raise ValueError(
            f"is_causal=True needs as many queries as keys; got {Q.shape[-2]} and {K.shape[-2]}"
        )
    if K.shape[-2] == 0:
        raise ValueError("FlashAttention needs at least one key")
