"""count_parameters / flops_per_token against the real modules and FlopCounterMode."""

from collections import Counter

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from cs336_common import (
    MODEL_PRESETS,
    ModelConfig,
    TransformerLM,
    count_parameters,
    flops_per_token,
)

BASE = dict(vocab_size=101, context_length=40, d_model=48, num_layers=2, num_heads=3, d_ff=80)
VARIANTS = [
    {},
    {"use_rmsnorm": False},
    {"norm_position": "post"},
    {"ffn": "silu"},
    {"tie_embeddings": True},
    {"use_rope": False, "d_model": 40, "num_heads": 5, "d_ff": None, "num_layers": 3},
]


@pytest.mark.parametrize("variant", VARIANTS)
def test_count_parameters_of_config_equals_model(variant):
    cfg = ModelConfig(**{**BASE, **variant})
    model = TransformerLM.from_config(cfg)
    counts = count_parameters(model)
    assert counts == count_parameters(cfg)
    unique = {id(p): p.numel() for p in model.parameters()}
    assert counts["total"] == sum(unique.values())
    assert counts["non_embedding"] == counts["total"] - cfg.vocab_size * cfg.d_model


def test_gpt2_xl_parameter_count():
    # 2 · 50257 · 1600 embeddings + 48 layers · (4·1600² + 3·1600·6400 + 2·1600) + 1600
    counts = count_parameters(ModelConfig.from_preset("gpt2-xl"))
    assert counts["total"] == 2_127_057_600
    assert counts["non_embedding"] == counts["total"] - 50257 * 1600


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize(("batch", "seq"), [(2, 17), (1, 40)])
def test_flops_match_flop_counter_exactly(variant, batch, seq):
    cfg = ModelConfig(**{**BASE, **variant})
    model = TransformerLM.from_config(cfg)
    ids = torch.randint(0, cfg.vocab_size, (batch, seq))
    with FlopCounterMode(display=False) as counter:
        model(ids)
    measured = Counter()
    for module, ops in counter.get_flop_counts().items():
        parts = module.split(".")
        n = sum(ops.values())
        if parts[-1] == "attn":  # q/k/v/out projections are mm's, the attention itself bmm's
            by_name = {op.__name__.split(".")[-1]: f for op, f in ops.items()}
            measured["attention_projections"] += by_name.get("mm", 0)
            measured["attention"] += by_name.get("bmm", 0)
            assert by_name.keys() <= {"mm", "bmm"}
        elif parts[-1] == "ffn":
            measured["ffn"] += n
        elif parts[-1] == "lm_head":
            measured["lm_head"] += n
    tokens = batch * seq
    expected = {k: v * tokens for k, v in flops_per_token(cfg, seq).items()}
    assert counter.get_total_flops() == expected["total"]
    assert measured["attention_projections"] == expected["attention_projections"]
    assert (
        measured["attention"] == expected["attention_scores"] + expected["attention_weighted_sum"]
    )
    assert measured["ffn"] == expected["ffn"]
    assert measured["lm_head"] == expected["lm_head"]


def test_flops_default_seq_len_is_context_length():
    cfg = ModelConfig.from_preset("gpt2-small")
    assert flops_per_token(cfg) == flops_per_token(cfg, 1024)
    f = flops_per_token(cfg, 1024)
    assert f["lm_head"] == 2 * 768 * 50257
    assert f["attention_scores"] == 12 * 2 * 1024 * 768


def test_presets_build_models_with_the_counted_parameters():
    for name, shape in MODEL_PRESETS.items():
        cfg = ModelConfig.from_preset(name)
        assert cfg.d_model == shape["d_model"]
        model = TransformerLM.from_config(cfg, device="meta")  # shapes only, no memory
        assert count_parameters(model) == count_parameters(cfg), name
    assert MODEL_PRESETS["2.7b"]["d_ff"] == 10240
    assert MODEL_PRESETS["gpt2-medium"]["vocab_size"] == 50257
