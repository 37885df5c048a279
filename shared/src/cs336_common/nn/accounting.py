"""Parameter and FLOP accounting of `TransformerLM`, per component.

FLOPs count forward matrix multiplies only (2·m·n·k for an (m, k) @ (k, n) product):
norms, softmax, RoPE and activations are lower order. Attention is counted over the
full seq × seq score matrix, as the naive and PyTorch kernels compute it (a causal
FlashAttention kernel skips about half of that).
"""

from __future__ import annotations

from torch import nn

from cs336_common.nn.config import ModelConfig

_COMPONENTS = ("token_embeddings", "attention", "ffn", "norms", "lm_head")


def count_parameters(model_or_config: nn.Module | ModelConfig) -> dict[str, int]:
    """Parameter counts: ``total``, ``non_embedding`` (total minus the token embedding)
    and per component: ``token_embeddings``, ``attention``, ``ffn``, ``norms``,
    ``lm_head`` (0 when tied). A module is counted from its parameters (shared ones
    once); a `ModelConfig` analytically."""
    if isinstance(model_or_config, ModelConfig):
        counts = _count_config(model_or_config)
    else:
        counts = dict.fromkeys(_COMPONENTS, 0)
        counts["other"] = counts["position_embeddings"] = 0
        for name, p in model_or_config.named_parameters():
            counts[_component(name)] += p.numel()
        for extra in ("other", "position_embeddings"):
            if not counts[extra]:
                del counts[extra]
    counts["total"] = sum(counts.values())
    counts["non_embedding"] = (
        counts["total"] - counts["token_embeddings"] - counts.get("position_embeddings", 0)
    )
    return counts


def _component(name: str) -> str:
    if name.startswith("token_embeddings."):
        return "token_embeddings"
    if name.startswith("lm_head."):
        return "lm_head"
    if name.startswith("position_embeddings."):
        return "position_embeddings"
    if ".attn." in name:
        return "attention"
    if ".ffn." in name:
        return "ffn"
    if name.startswith("ln_final.") or ".ln1." in name or ".ln2." in name:
        return "norms"
    return "other"


def _count_config(cfg: ModelConfig) -> dict[str, int]:
    d, L, V = cfg.d_model, cfg.num_layers, cfg.vocab_size
    ffn_mats = 3 if cfg.ffn == "swiglu" else 2
    norms = 0
    if cfg.use_rmsnorm:  # a LayerNorm has a bias as well as a gain
        per_norm = 2 * d if cfg.norm_type == "layernorm" else d
        norms = (2 * L + (cfg.norm_position == "pre")) * per_norm
    positions = {"position_embeddings": cfg.context_length * d} if cfg.absolute_positions else {}
    return {
        **positions,
        "token_embeddings": V * d,
        "attention": L * 4 * d * d,
        "ffn": L * ffn_mats * d * cfg.d_ff_effective,
        "norms": norms,
        "lm_head": 0 if cfg.tie_embeddings else V * d,
    }


def flops_per_token(config: ModelConfig, seq_len: int | None = None) -> dict[str, int]:
    """Forward matmul FLOPs per token of a ``seq_len``-token sequence (default: the
    context length), per component: ``attention_projections`` (q, k, v, output),
    ``attention_scores`` (Q Kᵀ), ``attention_weighted_sum`` (softmax · V), ``ffn``,
    ``lm_head``, and their ``total``. Multiply by the tokens for a whole forward pass."""
    cfg = config
    T = cfg.context_length if seq_len is None else seq_len
    d, L = cfg.d_model, cfg.num_layers
    ffn_mats = 3 if cfg.ffn == "swiglu" else 2
    flops = {
        "attention_projections": L * 4 * 2 * d * d,
        "attention_scores": L * 2 * T * d,
        "attention_weighted_sum": L * 2 * T * d,
        "ffn": L * ffn_mats * 2 * d * cfg.d_ff_effective,
        "lm_head": 2 * d * cfg.vocab_size,
    }
    flops["total"] = sum(flops.values())
    return flops
