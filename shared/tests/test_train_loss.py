import pytest
import torch
import torch.nn.functional as F

from cs336_common.train import cross_entropy


@pytest.mark.parametrize("shape", [(7, 50), (3, 5, 50)])
def test_matches_torch_value_and_gradient(shape):
    logits = torch.randn(*shape, dtype=torch.float64, requires_grad=True)
    targets = torch.randint(0, shape[-1], shape[:-1])
    ours = cross_entropy(logits, targets)
    (g_ours,) = torch.autograd.grad(ours, logits)
    ref = F.cross_entropy(logits.reshape(-1, shape[-1]), targets.reshape(-1))
    (g_ref,) = torch.autograd.grad(ref, logits)
    torch.testing.assert_close(ours, ref, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(g_ours, g_ref, rtol=1e-10, atol=1e-12)


def test_stable_for_huge_logits():
    logits = torch.randn(4, 10) * 1e4 + 1e30
    targets = torch.randint(0, 10, (4,))
    ours = cross_entropy(logits, targets)
    assert torch.isfinite(ours)
    torch.testing.assert_close(ours, F.cross_entropy(logits, targets))


def test_bf16_logits_are_upcast():
    logits = (torch.randn(16, 1000) * 3).bfloat16()
    targets = torch.randint(0, 1000, (16,))
    ours = cross_entropy(logits, targets)
    assert ours.dtype == torch.float32
    torch.testing.assert_close(ours, F.cross_entropy(logits.float(), targets))


def test_compiled_matches_eager_value_and_gradient():
    """Compiled, the target logit is a masked sum instead of a gather: same numbers."""
    logits = (torch.randn(6, 9, 37) * 4).requires_grad_()
    targets = torch.randint(0, 37, (6, 9))
    eager = cross_entropy(logits, targets)
    (g_eager,) = torch.autograd.grad(eager, logits)
    compiled = torch.compile(cross_entropy, fullgraph=True)(logits, targets)
    (g_compiled,) = torch.autograd.grad(compiled, logits)
    torch.testing.assert_close(compiled, eager)
    torch.testing.assert_close(g_compiled, g_eager)


def test_masked_mean_matches_torch_on_kept_positions():
    gen = torch.Generator().manual_seed(3)
    logits = torch.randn(4, 6, 11, dtype=torch.float64, generator=gen, requires_grad=True)
    targets = torch.randint(0, 11, (4, 6), generator=gen)
    mask = torch.rand(4, 6, generator=gen) < 0.5
    ours = cross_entropy(logits, targets, mask)
    ref = F.cross_entropy(logits[mask], targets[mask])
    torch.testing.assert_close(ours, ref, rtol=1e-12, atol=1e-12)
    (g_ours,) = torch.autograd.grad(ours, logits)
    (g_ref,) = torch.autograd.grad(F.cross_entropy(logits[mask], targets[mask]), logits)
    torch.testing.assert_close(g_ours, g_ref)
    assert g_ours[~mask].abs().max() == 0


def test_all_zero_mask_gives_zero_and_shape_mismatch_is_refused():
    logits = torch.randn(2, 3, 5)
    targets = torch.zeros(2, 3, dtype=torch.long)
    assert cross_entropy(logits, targets, torch.zeros(2, 3)).item() == 0.0
    with pytest.raises(ValueError, match="mask shape"):
        cross_entropy(logits, targets, torch.ones(3, 2))
