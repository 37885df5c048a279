import pytest
import torch

from cs336_common.device import peak_flops
from cs336_common.nn import ModelConfig, count_parameters, flops_per_token
from cs336_common.train.metrics import model_flops_utilization


@pytest.mark.parametrize(
    "name, bf16",
    [
        ("NVIDIA H100 80GB HBM3", 989e12),
        ("NVIDIA H100 PCIe", 756e12),
        ("NVIDIA A100-SXM4-80GB", 312e12),
    ],
)
def test_peak_flops_by_gpu_name(monkeypatch, name, bf16):
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: name)
    assert peak_flops(torch.device("cuda"), "bf16") == bf16
    assert peak_flops(torch.device("cuda"), "fp32") == bf16 / 2  # TF32
    assert peak_flops(torch.device("cpu"), "bf16") is None


def test_mfu_is_6n_plus_attention_over_peak():
    """Kaplan et al.'s training FLOPs per token: 6·N (non-embedding parameters, LM head
    included) + 12·L·T·d for the attention scores and weighted sums."""
    cfg = ModelConfig.from_preset("tinystories")
    n = count_parameters(cfg)["non_embedding"] - count_parameters(cfg)["norms"]
    per_token = 6 * n + 12 * cfg.num_layers * cfg.context_length * cfg.d_model
    fwd = flops_per_token(cfg)["total"]
    assert model_flops_utilization(1e6, fwd, 1e15) == pytest.approx(per_token * 1e6 / 1e15)
    assert model_flops_utilization(1e6, fwd, None) is None
