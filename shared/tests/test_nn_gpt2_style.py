"""The GPT-2-style options of TransformerLM (LayerNorm, GeLU MLP, learned absolute positions,
dropout) against PyTorch's own ops, and the "scaling-api" architecture built from them."""

import pytest
import torch
import torch.nn.functional as F

from cs336_common.nn import ModelConfig, TransformerLM, count_parameters
from cs336_common.nn.layers import GeLUFeedForward, LayerNorm


def test_layernorm_matches_torch():
    torch.manual_seed(0)
    ln = LayerNorm(24, dtype=torch.float64)
    with torch.no_grad():
        ln.weight.normal_()
        ln.bias.normal_()
    x = torch.randn(3, 5, 24, dtype=torch.float64)
    ref = F.layer_norm(x, (24,), ln.weight, ln.bias, eps=1e-5)
    torch.testing.assert_close(ln(x), ref)


def test_gelu_ffn_matches_torch():
    torch.manual_seed(1)
    ffn = GeLUFeedForward(16, 64, dtype=torch.float64)
    x = torch.randn(2, 7, 16, dtype=torch.float64)
    ref = F.gelu(x @ ffn.w1.weight.T) @ ffn.w2.weight.T
    torch.testing.assert_close(ffn(x), ref)


def _reference_forward(model, ids):
    """The scaling-api model written with torch.nn.functional, from the model's weights."""
    cfg, sd = model.config, model.state_dict()
    T, H = ids.shape[1], cfg.num_heads
    x = sd["token_embeddings.weight"][ids] + sd["position_embeddings.weight"][:T]
    for i in range(cfg.num_layers):
        p = f"layers.{i}."
        h = F.layer_norm(x, (cfg.d_model,), sd[p + "ln1.weight"], sd[p + "ln1.bias"])
        q, k, v = (
            (h @ sd[p + f"attn.{n}_proj.weight"].T).unflatten(-1, (H, -1)).transpose(1, 2)
            for n in "qkv"
        )
        a = F.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2).flatten(-2)
        x = x + a @ sd[p + "attn.output_proj.weight"].T
        h = F.layer_norm(x, (cfg.d_model,), sd[p + "ln2.weight"], sd[p + "ln2.bias"])
        x = x + F.gelu(h @ sd[p + "ffn.w1.weight"].T) @ sd[p + "ffn.w2.weight"].T
    x = F.layer_norm(x, (cfg.d_model,), sd["ln_final.weight"], sd["ln_final.bias"])
    return x @ sd["lm_head.weight"].T


def test_scaling_api_architecture_matches_reference_and_counts():
    torch.manual_seed(2)
    cfg = ModelConfig.from_architecture(
        "scaling-api", vocab_size=50, context_length=16, d_model=32, num_layers=2, num_heads=4
    )
    assert cfg.d_ff == 128 and cfg.dropout == 0.1 and not cfg.use_rope
    model = TransformerLM.from_config(cfg, dtype=torch.float64).eval()
    ids = torch.randint(0, 50, (3, 12))
    torch.testing.assert_close(model(ids), _reference_forward(model, ids))
    counts = count_parameters(model)
    assert counts == count_parameters(cfg)
    assert counts["position_embeddings"] == 16 * 32
    assert counts["non_embedding"] == counts["total"] - 50 * 32 - 16 * 32
    # dropout acts in training mode only
    model.train()
    assert not torch.allclose(model(ids), _reference_forward(model, ids))
    assert ModelConfig.from_json(cfg.to_json()) == cfg


def test_new_options_validate_and_leave_defaults_alone():
    with pytest.raises(ValueError, match="dropout"):
        ModelConfig(
            vocab_size=10, context_length=8, d_model=8, num_layers=1, num_heads=2, dropout=1.0
        )
    with pytest.raises(ValueError, match="norm_type"):
        ModelConfig(
            vocab_size=10, context_length=8, d_model=8, num_layers=1, num_heads=2, norm_type="x"
        )
    with pytest.raises(KeyError, match="unknown architecture"):
        ModelConfig.from_architecture("gpt-5")
    model = TransformerLM(vocab_size=10, context_length=8, d_model=8, num_layers=1, num_heads=2)
    assert not hasattr(model, "position_embeddings")
    assert "position_embeddings" not in count_parameters(model)
    assert not any(isinstance(m, torch.nn.Dropout) for m in model.modules())
