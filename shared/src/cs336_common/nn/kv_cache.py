"""Key/value cache for incremental decoding.

Keys and values of every layer are preallocated for the whole context, so a decoding
step writes one slot per layer and never reallocates or concatenates. All rows share one
slot counter; rows of different lengths are left-padded, and the cache then keeps a
per-slot mask of which positions are real (``key_mask``) so that padding is never attended.
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
        # (batch_size, max_seq_len) bool, True = a real token; None while nothing is padded
        self.key_mask: Tensor | None = None

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

    def write_mask(self, mask: Tensor | None, seq: int) -> Tensor | None:
        """Record which of the next ``seq`` slots are real (mask: bool (batch, seq); None:
        all of them) and return the key mask of slots ``0 .. length+seq-1``, or None when
        no slot so far is padding."""
        if mask is None and self.key_mask is None:
            return None
        end = self.length + seq
        if self.key_mask is None:
            self.key_mask = torch.ones(
                self.batch_size, self.max_seq_len, dtype=torch.bool, device=self.keys.device
            )
        self.key_mask[:, self.length : end] = True if mask is None else mask
        return self.key_mask[:, :end]

    def real_lengths(self) -> Tensor:
        """int64 (batch_size,): the number of real (unpadded) cached tokens per row."""
        if self.key_mask is None:
            return torch.full((self.batch_size,), self.length, device=self.keys.device)
        return self.key_mask[:, : self.length].sum(-1)

    def select_rows(self, rows: Tensor) -> None:
        """Keep only batch rows ``rows`` (int indices, repeats allowed), in that order:
        drop finished sequences, or repeat a prefilled prompt for several samples. Only the
        ``length`` used slots are copied; the rest are written before they are read."""
        self.keys = self._gather(self.keys, rows)
        self.values = self._gather(self.values, rows)
        if self.key_mask is not None:
            self.key_mask = self.key_mask[rows]

    def _gather(self, buffer: Tensor, rows: Tensor) -> Tensor:
        L, _, H, T, D = buffer.shape
        out = buffer.new_empty((L, len(rows), H, T, D))
        out[:, :, :, : self.length] = buffer[:, rows, :, : self.length]
        return out

    def reset(self) -> None:
        """Forget every cached position (the buffers are reused)."""
        self.length = 0
        self.key_mask = None

    def __repr__(self) -> str:
        L, B, H, T, D = self.keys.shape
        return (
            f"KVCache(length={self.length}, max_seq_len={T}, layers={L}, batch={B}, "
            f"heads={H}, d_head={D}, dtype={self.keys.dtype}, device={self.keys.device})"
        )
