"""Masked reductions used by every loss: sums and means over the response tokens only."""

from __future__ import annotations

import torch


def masked_normalize(
    tensor: torch.Tensor, mask: torch.Tensor, normalize_constant: float, dim: int | None = None
) -> torch.Tensor:
    """Sum of ``tensor`` where ``mask`` is 1, over ``dim`` (all dims if None), divided by
    ``normalize_constant``."""
    masked = torch.where(mask.bool(), tensor, torch.zeros_like(tensor))
    total = masked.sum() if dim is None else masked.sum(dim=dim)
    return total / normalize_constant


def masked_mean(tensor: torch.Tensor, mask: torch.Tensor, dim: int | None = None) -> torch.Tensor:
    """Mean of ``tensor`` over the elements where ``mask`` is 1, along ``dim`` (all if None).
    A slice with no masked-in element gives NaN, as ``torch.mean`` of nothing does."""
    m = mask.to(tensor.dtype)
    masked = torch.where(mask.bool(), tensor, torch.zeros_like(tensor))
    if dim is None:
        return masked.sum() / m.sum()
    return masked.sum(dim=dim) / m.sum(dim=dim)
