"""Layers and functional ops against PyTorch's own kernels on the same weights."""

import math

import pytest
import torch
import torch.nn.functional as F

from cs336_common.nn import (
    Embedding,
    Linear,
    RMSNorm,
    SiLUFeedForward,
    SwiGLU,
    default_d_ff,
    scaled_dot_product_attention,
    silu,
    softmax,
)

SHAPES = [(7,), (3, 5), (2, 3, 11)]  # leading dims


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.mark.parametrize("lead", SHAPES)
@pytest.mark.parametrize(("d_in", "d_out"), [(16, 24), (37, 5)])
def test_linear_matches_f_linear(lead, d_in, d_out):
    lin = Linear(d_in, d_out)
    assert lin.weight.shape == (d_out, d_in)
    x = torch.randn(*lead, d_in)
    torch.testing.assert_close(lin(x), F.linear(x, lin.weight), rtol=1e-6, atol=1e-6)


def test_linear_load_state_dict_and_init():
    lin = Linear(300, 500)
    std = math.sqrt(2 / 800)
    w = lin.weight.detach()
    assert w.abs().max() <= 3 * std + 1e-7
    assert abs(w.std().item() - std * 0.9866) < 0.02 * std  # truncated at 3σ shrinks the std
    new = torch.randn(500, 300)
    lin.load_state_dict({"weight": new})
    torch.testing.assert_close(lin.weight.detach(), new)


@pytest.mark.parametrize("lead", SHAPES)
def test_embedding_matches_f_embedding(lead):
    emb = Embedding(53, 19)
    ids = torch.randint(0, 53, lead)
    torch.testing.assert_close(emb(ids), F.embedding(ids, emb.weight), rtol=0, atol=0)
    w = emb.weight.detach()
    assert w.abs().max() <= 3 and abs(w.std().item() - 0.9866) < 0.1


@pytest.mark.parametrize("lead", SHAPES)
@pytest.mark.parametrize("d", [8, 45])
def test_rmsnorm_matches_float64_and_torch(lead, d):
    norm = RMSNorm(d)
    norm.load_state_dict({"weight": torch.randn(d)})
    x = torch.randn(*lead, d) * 3
    x64, w64 = x.double(), norm.weight.detach().double()
    ref = x64 / torch.sqrt(x64.square().mean(-1, keepdim=True) + 1e-5) * w64
    torch.testing.assert_close(norm(x), ref.float(), rtol=1e-6, atol=1e-6)
    torch_norm = torch.nn.RMSNorm(d, eps=1e-5)
    torch_norm.load_state_dict(norm.state_dict())
    torch.testing.assert_close(norm(x), torch_norm(x), rtol=1e-6, atol=1e-6)


def test_rmsnorm_computes_in_float32_and_keeps_dtype():
    norm = RMSNorm(64)
    x = torch.randn(4, 64).to(torch.bfloat16) * 1e-3
    out = norm(x)
    assert out.dtype == torch.bfloat16
    ref = torch.nn.functional.rms_norm(x.float(), (64,), eps=1e-5).to(torch.bfloat16)
    torch.testing.assert_close(out, ref, rtol=0, atol=0)


@pytest.mark.parametrize("lead", SHAPES)
def test_silu_matches_f_silu(lead):
    x = torch.randn(*lead) * 5
    torch.testing.assert_close(silu(x), F.silu(x), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("lead", SHAPES)
@pytest.mark.parametrize(("d_model", "d_ff"), [(16, 48), (30, 70)])
def test_swiglu_matches_reference(lead, d_model, d_ff):
    ffn = SwiGLU(d_model, d_ff)
    w1, w2, w3 = ffn.w1.weight, ffn.w2.weight, ffn.w3.weight
    assert w1.shape == w3.shape == (d_ff, d_model) and w2.shape == (d_model, d_ff)
    x = torch.randn(*lead, d_model)
    ref = F.linear(F.silu(F.linear(x, w1)) * F.linear(x, w3), w2)
    torch.testing.assert_close(ffn(x), ref, rtol=1e-6, atol=1e-6)
    assert set(ffn.state_dict()) == {"w1.weight", "w2.weight", "w3.weight"}


def test_silu_ffn_matches_reference():
    ffn = SiLUFeedForward(24, 96)
    x = torch.randn(3, 5, 24)
    ref = F.linear(F.silu(F.linear(x, ffn.w1.weight)), ffn.w2.weight)
    torch.testing.assert_close(ffn(x), ref, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize(("d_model", "expected"), [(512, 1408), (768, 2048), (100, 320)])
def test_default_d_ff(d_model, expected):
    assert default_d_ff(d_model) == expected
    assert SwiGLU(d_model).w1.weight.shape == (expected, d_model)


@pytest.mark.parametrize("lead", SHAPES)
@pytest.mark.parametrize("dim", [0, -1])
def test_softmax_matches_f_softmax(lead, dim):
    x = torch.randn(*lead, 13) * 10
    torch.testing.assert_close(softmax(x, dim), F.softmax(x, dim), rtol=1e-6, atol=1e-6)


def test_softmax_is_stable_for_large_inputs():
    x = torch.tensor([[1000.0, 1001.0, 999.0], [-1e4, 0.0, 1e4]])
    out = softmax(x, -1)
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out, F.softmax(x, -1))


@pytest.mark.parametrize("lead", [(), (3,), (2, 5)])
@pytest.mark.parametrize(("n", "m"), [(7, 7), (4, 9)])
def test_sdpa_matches_torch(lead, n, m):
    q, k = torch.randn(*lead, n, 12), torch.randn(*lead, m, 12)
    v = torch.randn(*lead, m, 20)
    torch.testing.assert_close(
        scaled_dot_product_attention(q, k, v),
        F.scaled_dot_product_attention(q, k, v),
        rtol=1e-6,
        atol=1e-6,
    )
    mask = torch.rand(*lead, n, m) > 0.4
    mask[..., 0] = True  # every query sees at least one key
    torch.testing.assert_close(
        scaled_dot_product_attention(q, k, v, mask),
        F.scaled_dot_product_attention(q, k, v, attn_mask=mask),
        rtol=1e-6,
        atol=1e-6,
    )


def test_package_reexports_the_model_api_lazily():
    import subprocess
    import sys

    import cs336_common
    import cs336_common.nn

    assert set(cs336_common.nn.__all__) <= set(cs336_common.__all__)
    for name in cs336_common.nn.__all__:
        assert getattr(cs336_common, name) is getattr(cs336_common.nn, name)
    code = "import sys, cs336_common, cs336_common.cli; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_softmax_of_16bit_inputs_is_computed_in_float32(dtype):
    x = (torch.randn(4, 300) * 4).to(dtype)
    out = softmax(x, -1)
    assert out.dtype == dtype
    torch.testing.assert_close(out, F.softmax(x.float(), -1).to(dtype), rtol=0, atol=0)
