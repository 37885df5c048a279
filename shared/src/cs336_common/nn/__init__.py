"""Transformer LM primitives, from ``nn.Parameter`` and tensor ops.

One concept per file: ``layers`` (Linear, Embedding, RMSNorm, feed-forwards),
``functional`` (silu, softmax, attention), ``rope``, ``attention``, ``kv_cache``,
``transformer`` (block and LM), ``config`` (ModelConfig, presets), ``accounting``.
"""

from cs336_common.nn.accounting import count_parameters, flops_per_token
from cs336_common.nn.attention import MultiHeadSelfAttention, resolve_attention_backend
from cs336_common.nn.config import MODEL_PRESETS, ModelConfig, load_model_config
from cs336_common.nn.functional import causal_mask, scaled_dot_product_attention, silu, softmax
from cs336_common.nn.kv_cache import KVCache
from cs336_common.nn.layers import (
    Embedding,
    Linear,
    RMSNorm,
    SiLUFeedForward,
    SwiGLU,
    default_d_ff,
)
from cs336_common.nn.rope import RotaryPositionalEmbedding
from cs336_common.nn.transformer import TransformerBlock, TransformerLM

__all__ = [
    "MODEL_PRESETS",
    "Embedding",
    "KVCache",
    "Linear",
    "ModelConfig",
    "MultiHeadSelfAttention",
    "RMSNorm",
    "RotaryPositionalEmbedding",
    "SiLUFeedForward",
    "SwiGLU",
    "TransformerBlock",
    "TransformerLM",
    "causal_mask",
    "count_parameters",
    "default_d_ff",
    "flops_per_token",
    "load_model_config",
    "resolve_attention_backend",
    "scaled_dot_product_attention",
    "silu",
    "softmax",
]
