"""Gradient clipping by the global L2 norm of all gradients."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

import torch
from torch import Tensor


@torch.no_grad()
def gradient_clipping(
    parameters: Iterable[Tensor], max_l2_norm: float, eps: float = 1e-6
) -> Tensor:
    """Scale every gradient in place by ``min(1, max_l2_norm / (‖g‖ + eps))``, where ‖g‖ is
    the L2 norm of all gradients concatenated. Parameters without a gradient are skipped.

    Returns ‖g‖ before clipping (a 0-d float32 tensor, for logging). The scale is applied
    unconditionally (clamped at 1) so the GPU never waits on a host-side comparison.
    """
    by_device = defaultdict(list)
    for p in parameters:
        if p.grad is not None:
            by_device[p.grad.device].append(p.grad)
    if not by_device:
        return torch.tensor(0.0)
    first = next(iter(by_device))
    # one stack per device (not a conversion per tensor): the host cost of every step
    norms = [
        torch.stack(torch._foreach_norm(grads)).float().to(first) for grads in by_device.values()
    ]
    total = torch.linalg.vector_norm(torch.cat(norms))
    scale = (max_l2_norm / (total + eps)).clamp(max=1.0)
    for device, grads in by_device.items():
        torch._foreach_mul_(grads, scale.to(device))
    # DTensor gradients (FSDP2's fully_shard) give a DTensor norm: hand back a plain one
    return total.full_tensor() if hasattr(total, "full_tensor") else total
