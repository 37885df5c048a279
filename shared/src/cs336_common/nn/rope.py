"""Rotary positional embedding (RoPE, Su et al. 2021).

Consecutive pairs ``(x[2i], x[2i+1])`` of each query/key vector are rotated by the
angle ``position · theta^(-2i/d_k)``, so that ``q_m · k_n`` depends only on ``m - n``.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class RotaryPositionalEmbedding(nn.Module):
    """Apply RoPE to ``x`` of shape (..., seq, d_k).

    The cos/sin tables, (max_seq_len, d_k/2), are computed once in float64 and kept as
    non-persistent float32 buffers: they are derived, so they stay out of the state dict.
    """

    def __init__(self, theta: float, d_k: int, max_seq_len: int, device=None):
        super().__init__()
        if d_k % 2:
            raise ValueError(f"RoPE needs an even head dimension d_k, got {d_k}")
        self.theta, self.d_k, self.max_seq_len = theta, d_k, max_seq_len
        shape = (max_seq_len, d_k // 2)
        self.register_buffer("cos", torch.empty(shape, device=device), persistent=False)
        self.register_buffer("sin", torch.empty(shape, device=device), persistent=False)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """(Re)compute the tables in place, e.g. after ``model.to_empty(device=...)`` of a
        model built on the meta device: buffers outside the state dict are not loaded."""
        if self.cos.is_meta:
            return
        d_k = self.d_k
        inv_freq = self.theta ** (-torch.arange(0, d_k, 2, dtype=torch.float64) / d_k)
        angles = torch.outer(torch.arange(self.max_seq_len, dtype=torch.float64), inv_freq)
        with torch.no_grad():
            self.cos.copy_(angles.cos())
            self.sin.copy_(angles.sin())

    def forward(self, x: Tensor, token_positions: Tensor | None = None) -> Tensor:
        """x: (..., seq, d_k); token_positions: int (..., seq) broadcastable against
        x's leading dims, or None for ``0 .. seq-1``. Returns x's shape and dtype."""
        if token_positions is None:
            seq = x.shape[-2]
            cos, sin = self.cos[:seq], self.sin[:seq]
        else:
            cos, sin = self.cos[token_positions], self.sin[token_positions]
        return rotate_pairs(x, cos, sin)

    def extra_repr(self) -> str:
        return f"theta={self.theta}, d_k={self.d_k}, max_seq_len={self.max_seq_len}"


def rotate_pairs(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """Rotate each pair ``(x[..., 2i], x[..., 2i+1])`` by the angle whose cosine and sine
    are ``cos[..., i]``, ``sin[..., i]`` (broadcast against x's leading dims), in x's dtype."""
    cos, sin = cos.to(x.dtype), sin.to(x.dtype)
    x1, x2 = x[..., 0::2], x[..., 1::2]
    return torch.stack((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1).flatten(-2)
