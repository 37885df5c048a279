"""Cross-entropy of next-token logits, from log-sum-exp (no softmax probabilities)."""

from __future__ import annotations

from torch import Tensor


def cross_entropy(logits: Tensor, targets: Tensor) -> Tensor:
    """Mean of ``-log softmax(logits)[target]`` over every leading dimension.

    logits: (..., vocab); targets: (...) integer ids. ``log softmax(x)_t = x_t - logsumexp(x)``,
    and subtracting the row max first keeps ``exp`` from overflowing. 16-bit logits (bf16
    autocast) are upcast: their 8-bit mantissa is too coarse for a sum over the vocabulary.
    """
    if logits.element_size() < 4:
        logits = logits.float()
    # The max cancels in the gradient; detaching it saves a backward through amax.
    shifted = logits - logits.amax(dim=-1, keepdim=True).detach()
    log_normalizer = shifted.exp().sum(dim=-1).log()
    target_logit = shifted.gather(-1, targets.unsqueeze(-1).long()).squeeze(-1)
    return (log_normalizer - target_logit).mean()
