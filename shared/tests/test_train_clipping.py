import pytest
import torch

from cs336_common.train import gradient_clipping


def _params_with_grads(scale):
    ps = [torch.nn.Parameter(torch.randn(s)) for s in [(5, 3), (7,), (2, 2, 2)]]
    for p in ps:
        p.grad = torch.randn_like(p) * scale
    ps.append(torch.nn.Parameter(torch.randn(4)))  # no gradient: skipped
    return ps


@pytest.mark.parametrize("scale", [0.01, 10.0])
def test_matches_clip_grad_norm(scale):
    ours = _params_with_grads(scale)
    norm64 = torch.cat([p.grad.double().flatten() for p in ours[:3]]).norm()
    ref = [torch.nn.Parameter(p.detach().clone()) for p in ours]
    for p, q in zip(ours, ref, strict=True):
        q.grad = None if p.grad is None else p.grad.clone()
    norm = gradient_clipping(ours, max_l2_norm=1.0)
    ref_norm = torch.nn.utils.clip_grad_norm_(ref, max_norm=1.0)
    torch.testing.assert_close(norm, ref_norm)
    for p, q in zip(ours, ref, strict=True):
        if q.grad is None:
            assert p.grad is None
        else:
            torch.testing.assert_close(p.grad, q.grad)
    clipped = torch.linalg.vector_norm(torch.cat([p.grad.flatten() for p in ours[:3]]))
    assert clipped <= 1.0 + 1e-5
    torch.testing.assert_close(norm.double(), norm64)
    assert (scale > 1) == (norm64 > 1.0)
