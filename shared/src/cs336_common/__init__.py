"""cs336-common: model and tokenizer primitives shared by the cs336 packages."""

# The model API is re-exported lazily (PEP 562) so that importing the package, e.g. for
# a CLI's --help, does not import torch. Hence the names are listed here, mirroring
# cs336_common.nn.__all__ (a test keeps the two in step).
_NN_EXPORTS = (
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
    "resolve_attention_backend",
    "scaled_dot_product_attention",
    "silu",
    "softmax",
)

__all__ = [*_NN_EXPORTS]


def __getattr__(name: str):
    if name in _NN_EXPORTS:
        from cs336_common import nn

        return getattr(nn, name)
    raise AttributeError(f"module 'cs336_common' has no attribute {name!r}")
