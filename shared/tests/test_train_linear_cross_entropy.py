"""`linear_cross_entropy` against PyTorch's own ``F.cross_entropy(F.linear(h, W), t)``."""

import pytest
import torch
import torch.nn.functional as F

from cs336_common.nn import ModelConfig, TransformerLM
from cs336_common.train import cross_entropy, linear_cross_entropy


def _reference(h, w, t):
    return F.cross_entropy(F.linear(h, w).reshape(-1, w.shape[0]), t.reshape(-1))


@pytest.mark.parametrize("chunk", [None, 1, 5, 64])
@pytest.mark.parametrize("lead", [(21,), (3, 7)])
def test_value_and_gradients_match_torch_float64(chunk, lead):
    g = torch.Generator().manual_seed(hash((chunk, lead)) % 2**31)
    h = torch.randn(*lead, 16, generator=g, dtype=torch.float64, requires_grad=True)
    w = torch.randn(37, 16, generator=g, dtype=torch.float64, requires_grad=True)
    t = torch.randint(0, 37, lead, generator=g)
    ours = linear_cross_entropy(h, w, t, chunk_size=chunk)
    ref = _reference(h, w, t)
    torch.testing.assert_close(ours, ref, rtol=1e-12, atol=1e-12)
    # a non-unit incoming gradient reaches both inputs
    got = torch.autograd.grad(3.0 * ours, (h, w))
    want = torch.autograd.grad(3.0 * ref, (h, w))
    for a, b, name in zip(got, want, ("hidden", "weight"), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12, msg=name)


def test_bf16_autocast_matches_the_unfused_head_within_bf16_rounding():
    g = torch.Generator().manual_seed(1)
    h = torch.randn(64, 32, generator=g, requires_grad=True)
    w = (torch.randn(300, 32, generator=g) / 4).requires_grad_()
    t = torch.randint(0, 300, (64,), generator=g)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        ours = linear_cross_entropy(h, w, t, chunk_size=24)
        ref = _reference(h, w, t)
    assert ours.dtype == torch.float32
    torch.testing.assert_close(ours, ref, rtol=1e-2, atol=1e-2)
    got, want = torch.autograd.grad(ours, (h, w)), torch.autograd.grad(ref, (h, w))
    for a, b in zip(got, want, strict=True):
        assert a.dtype == b.dtype == torch.float32
        assert (a - b).norm() / b.norm() < 2e-2


def test_only_requested_gradients():
    h = torch.randn(5, 8, requires_grad=True)
    w = torch.randn(11, 8)  # frozen head
    t = torch.randint(0, 11, (5,))
    (g,) = torch.autograd.grad(linear_cross_entropy(h, w, t), (h,))
    (want,) = torch.autograd.grad(_reference(h, w, t), (h,))
    torch.testing.assert_close(g, want)


def test_model_features_feed_the_fused_loss():
    torch.manual_seed(0)
    cfg = ModelConfig(vocab_size=50, context_length=12, d_model=16, num_layers=2, num_heads=2)
    model = TransformerLM.from_config(cfg).double()
    x, y = torch.randint(0, 50, (2, 2, 12)).unbind(0)
    torch.testing.assert_close(model.lm_head(model.features(x)), model(x))
    fused = linear_cross_entropy(model.features(x), model.lm_head.weight, y, chunk_size=7)
    fused_grads = torch.autograd.grad(fused, list(model.parameters()))
    plain = cross_entropy(model(x), y)
    plain_grads = torch.autograd.grad(plain, list(model.parameters()))
    torch.testing.assert_close(fused, plain)
    for a, b in zip(fused_grads, plain_grads, strict=True):
        torch.testing.assert_close(a, b)


def test_shape_errors_name_the_shapes():
    with pytest.raises(ValueError, match=r"hidden \(4, 8\) and targets \(5,\)"):
        linear_cross_entropy(torch.randn(4, 8), torch.randn(3, 8), torch.zeros(5, dtype=torch.long))
    with pytest.raises(ValueError, match=r"weight must be \(vocab, 8\)"):
        linear_cross_entropy(torch.randn(4, 8), torch.randn(3, 9), torch.zeros(4, dtype=torch.long))
