"""cs336-common: model, tokenizer, training and generation shared by the cs336 packages."""

import importlib

# The model API, the generation engine and the tokenizer are re-exported lazily (PEP 562)
# so that importing the package, e.g. for a CLI's --help, imports neither torch nor regex.
# Hence the names are listed here, mirroring cs336_common.nn.__all__ (a test keeps the two
# in step).
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
    "load_model_config",
    "resolve_attention_backend",
    "scaled_dot_product_attention",
    "silu",
    "softmax",
)

_ENGINE_EXPORTS = ("Completion", "Engine", "SamplingParams")

_LAZY = (
    {name: "cs336_common.nn" for name in _NN_EXPORTS}
    | {name: "cs336_common.engine" for name in _ENGINE_EXPORTS}
    | {"Tokenizer": "cs336_common.tokenizer"}
)

__all__ = [*_NN_EXPORTS, *_ENGINE_EXPORTS, "Tokenizer"]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'cs336_common' has no attribute {name!r}")
