"""Key/value cache for incremental decoding.

Keys and values of every layer are preallocated for the whole context, so a decoding
step writes one slot per layer and never reallocates or concatenates.
"""

from __future__ import annotations

import torch
from torch import Tensor


class KVCache:
    """Cached keys and values of ``length`` positions, for ``num_layers`` layers.

    Per layer: (batch_size, num_heads, max_seq_len, d_head). Made by
    ``TransformerLM.new_kv_cache``; the model fills it: ``model(ids, kv_cache=cache)``
    treats ``ids`` as positions ``cache.length ...`` and appends their keys/values.
    """

    def __init__(
        self,
        num_layers: int,
        batch_size: int,
        num_heads: int,
        max_seq_len: int,
        d_head: int,
        device=None,
        dtype=None,
    ):
        shape = (num_layers, batch_size, num_heads, max_seq_len, d_head)
        self.keys = torch.zeros(shape, device=device, dtype=dtype)
        self.values = torch.zeros(shape, device=device, dtype=dtype)
        self.length = 0

    @property
    def batch_size(self) -> int:
        return self.keys.shape[1]

    @property
    def max_seq_len(self) -> int:
        return self.keys.shape[3]

    def update(self, layer: int, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        """Write k, v (batch, heads, seq, d_head) at positions ``length .. length+seq-1``
        of ``layer``; return that layer's keys and values for positions ``0 .. length+seq-1``.
        ``length`` itself moves on only in ``advance`` (once all layers are written)."""
        end = self.length + k.shape[-2]
        if end > self.max_seq_len:
            raise ValueError(
                f"KV cache holds {self.max_seq_len} positions; {self.length} are used and "
                f"{k.shape[-2]} more do not fit"
            )
        self.keys[layer, :, :, self.length : end] = k
        self.values[layer, :, :, self.length : end] = v
        return self.keys[layer, :, :, :end], self.values[layer, :, :, :end]

    def advance(self, n: int) -> None:
        self.length += n

    def reset(self) -> None:
        """Forget every cached position (the buffers are reused)."""
        self.length = 0

    def __repr__(self) -> str:
        L, B, H, T, D = self.keys.shape
        return (
            f"KVCache(length={self.length}, max_seq_len={T}, layers={L}, batch={B}, "
            f"heads={H}, d_head={D}, dtype={self.keys.dtype}, device={self.keys.device})"
        )
