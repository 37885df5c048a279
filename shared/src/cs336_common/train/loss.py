"""Cross-entropy of next-token logits, from log-sum-exp (no softmax probabilities)."""

from __future__ import annotations

import torch
from torch import Tensor


def cross_entropy(logits: Tensor, targets: Tensor, mask: Tensor | None = None) -> Tensor:
    """Mean of ``-log softmax(logits)[target]`` over every leading dimension, or, with a
    ``mask`` of the targets' shape, over the positions where it is nonzero (SFT trains on
    response tokens only); an all-zero mask gives 0, not NaN.

    logits: (..., vocab); targets: (...) integer ids. ``log softmax(x)_t = x_t - logsumexp(x)``,
    and subtracting the row max first keeps ``exp`` from overflowing. 16-bit logits (bf16
    autocast) are upcast: their 8-bit mantissa is too coarse for a sum over the vocabulary.
    """
    if logits.element_size() < 4:
        logits = logits.float()
    # The max cancels in the gradient; detaching it saves a backward through amax.
    shifted = logits - logits.amax(dim=-1, keepdim=True).detach()
    log_normalizer = shifted.exp().sum(dim=-1).log()
    nll = log_normalizer - _pick(shifted, targets)
    if mask is None:
        return nll.mean()
    if mask.shape != targets.shape:
        raise ValueError(f"mask shape {tuple(mask.shape)} != targets shape {tuple(targets.shape)}")
    mask = mask.to(nll.dtype)
    return (nll * mask).sum() / mask.sum().clamp(min=1)


def _pick(x: Tensor, targets: Tensor) -> Tensor:
    """``x[..., targets]``. Eager: a gather (one read per row). Compiled: a masked sum over
    the vocabulary, which fuses into the log-sum-exp pass and whose gradient is a
    pointwise ``where``; a gather's gradient would scatter into a zeroed (tokens, vocab)
    buffer, an extra write and read of the whole logits size."""
    targets = targets.unsqueeze(-1).long()
    if torch.compiler.is_compiling():
        vocab = torch.arange(x.shape[-1], device=x.device)
        return torch.where(vocab == targets, x, 0.0).sum(dim=-1)
    return x.gather(-1, targets).squeeze(-1)
