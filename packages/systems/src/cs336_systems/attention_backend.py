"""FlashAttention-2 as the Transformer LM's pluggable attention backend.

``ModelConfig(..., attention_backend=flash_attention_backend)`` (or ``bench model
--attention flash``) routes every attention call through it: the Triton kernels for CUDA
tensors, the tiled PyTorch implementation elsewhere (CPU, float64, or head dims above 128).
"""

from __future__ import annotations

import torch
from torch import Tensor

from cs336_systems.flash_pytorch import FlashAttentionPyTorch

_TRITON_MAX_HEAD_DIM = 128  # flash_triton.MAX_HEAD_DIM, without importing triton here
_TRITON_DTYPES = (torch.float32, torch.float16, torch.bfloat16)


def flash_attention_backend(q: Tensor, k: Tensor, v: Tensor, is_causal: bool) -> Tensor:
    """``fn(q, k, v, is_causal)`` on (batch, heads, seq, d_head), as the LM expects."""
    if q.is_cuda and q.shape[-1] <= _TRITON_MAX_HEAD_DIM and q.dtype in _TRITON_DTYPES:
        from cs336_systems.flash_triton import FlashAttentionTriton

        return FlashAttentionTriton.apply(q, k, v, is_causal)
    return FlashAttentionPyTorch.apply(q, k, v, is_causal)
