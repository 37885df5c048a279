"""Causal multi-head self-attention with a pluggable attention kernel.

A backend is any ``fn(q, k, v, is_causal) -> out`` on (batch, heads, seq, d_head)
tensors, where ``is_causal=True`` promises equal q/k lengths and means query i sees
keys ``<= i``. ``"naive"`` is the from-scratch kernel of ``functional.py``; ``"torch"``
is PyTorch's fused ``F.scaled_dot_product_attention``; ``"flash"`` is our Triton
FlashAttention-2 (``flash_attention.py``; SDPA where Triton cannot run), which in training
(no cache, no mask, default positions) also takes over RoPE and the packing of q, k, v;
a callable plugs in anything else without this package depending on it. q, k, v
may be non-contiguous views (heads transposed out of (batch, seq, heads, d_head)):
a kernel that needs contiguous memory calls ``.contiguous()`` itself.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cs336_common.nn.functional import causal_mask, scaled_dot_product_attention
from cs336_common.nn.kv_cache import KVCache
from cs336_common.nn.layers import Linear
from cs336_common.nn.rope import RotaryPositionalEmbedding

AttentionFn = Callable[[Tensor, Tensor, Tensor, bool], Tensor]
ATTENTION_BACKENDS = ("naive", "torch", "flash")


def _naive_attention(q: Tensor, k: Tensor, v: Tensor, is_causal: bool) -> Tensor:
    mask = causal_mask(q.shape[-2], k.shape[-2], device=q.device) if is_causal else None
    return scaled_dot_product_attention(q, k, v, mask)


def _torch_attention(q: Tensor, k: Tensor, v: Tensor, is_causal: bool) -> Tensor:
    return F.scaled_dot_product_attention(q, k, v, is_causal=is_causal)


def resolve_attention_backend(backend: str | AttentionFn) -> AttentionFn:
    """``"naive"`` / ``"torch"`` / a callable -> the attention function."""
    if callable(backend):
        return backend
    if backend == "naive":
        return _naive_attention
    if backend == "torch":
        return _torch_attention
    if backend == "flash":  # imported on use: it imports triton
        from cs336_common.nn.flash_attention import flash_attention

        return flash_attention
    raise ValueError(
        f"attention_backend must be one of {ATTENTION_BACKENDS} or a callable "
        f"fn(q, k, v, is_causal) -> out; got {backend!r}"
    )


class MultiHeadSelfAttention(nn.Module):
    """Causal self-attention. x: (..., seq, d_model) -> (..., seq, d_model).

    Projections ``q_proj, k_proj, v_proj, output_proj`` are (d_model, d_model) with
    rows grouped head by head (head h owns rows ``h·d_head .. (h+1)·d_head-1``).
    ``rope``: a RotaryPositionalEmbedding applied to queries and keys (None: NoPE).
    """

    def __init__(
        self,
        d_model: int,
        num_heads: int,
        *,
        rope: RotaryPositionalEmbedding | None = None,
        attention_backend: str | AttentionFn = "naive",
        device=None,
        dtype=None,
    ):
        super().__init__()
        if d_model % num_heads:
            raise ValueError(f"d_model ({d_model}) must be divisible by num_heads ({num_heads})")
        self.d_model, self.num_heads, self.d_head = d_model, num_heads, d_model // num_heads
        self.q_proj = Linear(d_model, d_model, device=device, dtype=dtype)
        self.k_proj = Linear(d_model, d_model, device=device, dtype=dtype)
        self.v_proj = Linear(d_model, d_model, device=device, dtype=dtype)
        self.output_proj = Linear(d_model, d_model, device=device, dtype=dtype)
        self.rope = rope
        self.attention_backend = attention_backend
        self._attention = resolve_attention_backend(attention_backend)

    def _project_qkv(self, x: Tensor) -> Tensor:
        # one (d_model -> 3·d_model) GEMM runs closer to peak than three narrow ones; the
        # weights stay three parameters, so state-dict keys and init are unchanged
        w = torch.cat((self.q_proj.weight, self.k_proj.weight, self.v_proj.weight))
        return x @ w.t()

    def _fused_rope_attention(self, x: Tensor) -> Tensor:
        """The ``"flash"`` backend's training path: RoPE inside the attention op."""
        from cs336_common.nn.flash_attention import flash_attention_rope

        b, s, d = x.shape
        qkv = self._project_qkv(x).view(b, s, 3, self.num_heads, self.d_head)
        out = flash_attention_rope(qkv, self.rope.cos[:s], self.rope.sin[:s])
        return self.output_proj(out.reshape(b, s, d))

    def _split_heads(self, x: Tensor) -> Tensor:
        b, s, _ = x.shape
        return x.view(b, s, self.num_heads, self.d_head).transpose(1, 2)

    def forward(
        self,
        x: Tensor,
        token_positions: Tensor | None = None,
        *,
        kv_cache: KVCache | None = None,
        layer_idx: int = 0,
        attn_mask: Tensor | None = None,
    ) -> Tensor:
        """token_positions: int (..., seq) or (seq,), default ``start .. start+seq-1``
        where start is ``kv_cache.length`` (0 without a cache). With ``kv_cache``, x
        continues the cached sequence and its keys/values go into slot ``layer_idx``.
        ``attn_mask``: bool, broadcastable to (batch, 1, seq, keys), True = may attend; it
        replaces the causal mask (padded batches). A backend function takes no mask, so
        masked attention runs the from-scratch kernel for ``"naive"``, else PyTorch's SDPA."""
        *lead, seq, d = x.shape
        x = x.reshape(-1, seq, d)
        plain = kv_cache is None and attn_mask is None and token_positions is None
        if plain and self.attention_backend == "flash" and self.rope is not None:
            return self._fused_rope_attention(x).reshape(*lead, seq, d)
        q, k, v = (self._split_heads(t) for t in self._project_qkv(x).split(d, dim=-1))
        if self.rope is not None:
            start = 0 if kv_cache is None or token_positions is not None else kv_cache.length
            if start:
                token_positions = torch.arange(start, start + seq, device=x.device)
            if token_positions is not None and token_positions.ndim > 1:
                token_positions = token_positions.broadcast_to((*lead, seq)).reshape(-1, seq)
            if token_positions is not None:  # (batch or 1, 1, seq): the same for every head
                token_positions = token_positions.unsqueeze(-2)
            q, k = self.rope(q, token_positions), self.rope(k, token_positions)
        if kv_cache is not None:
            k, v = kv_cache.update(layer_idx, k, v)
        attend = getattr(kv_cache, "attend", None)
        if attend is not None:  # a cache with its own decode kernel (the engine's)
            out = attend(layer_idx, q)
        elif attn_mask is not None:
            out = self._masked_attention(q, k, v, attn_mask)
        elif seq == k.shape[-2]:
            out = self._attention(q, k, v, True)
        elif seq == 1:  # one new token attends to every cached position
            out = self._attention(q, k, v, False)
        else:  # a chunk after a non-empty cache: bottom-right causal mask
            out = scaled_dot_product_attention(q, k, v, causal_mask(seq, k.shape[-2], x.device))
        out = out.transpose(1, 2).reshape(*lead, seq, d)
        return self.output_proj(out)

    def _masked_attention(self, q: Tensor, k: Tensor, v: Tensor, mask: Tensor) -> Tensor:
        if self.attention_backend == "naive":
            return scaled_dot_product_attention(q, k, v, mask)
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)

    def extra_repr(self) -> str:
        backend = getattr(self.attention_backend, "__name__", self.attention_backend)
        return f"num_heads={self.num_heads}, d_head={self.d_head}, backend={backend}"
