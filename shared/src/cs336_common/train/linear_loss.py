"""`linear_cross_entropy(hidden, weight, targets)`: the LM head and the cross-entropy in one
op that never holds the (tokens, vocab) logits.

The logits are the largest tensor of a training step (128 × 256 tokens × a 10k vocabulary
is 1.3 GB in fp32): the LM head writes them, the loss reads them, backward reads them
again and writes their gradient of the same size. Here the tokens go through in chunks:
a chunk's logits are computed and at once turned into its loss and the gradient of its
logits, ``(softmax - onehot(target)) / N``, which is multiplied straight into the
gradients of the hidden states and of the weight. Backward only scales those two by the
incoming gradient. Memory: one chunk of logits instead of all of them; FLOPs: the same
three matmuls as the LM head's forward and backward.

    loss = linear_cross_entropy(model.features(x), model.lm_head.weight, y)
    # == cross_entropy(model(x), y), without the logits

Precision follows autocast: under bf16 autocast the matmuls take bf16 operands (fp32
accumulation), as the separate LM head would; the softmax is computed in fp32 (or
float64 for float64 inputs).
``compile=True`` fuses each chunk's softmax, loss and gradient into one kernel with
``torch.compile``.
"""

from __future__ import annotations

import functools

import torch
from torch import Tensor

_CHUNK_ELEMENTS = 1 << 26  # logits per chunk: 256 MiB in fp32


def linear_cross_entropy(
    hidden: Tensor,
    weight: Tensor,
    targets: Tensor,
    *,
    chunk_size: int | None = None,
    compile: bool = False,
) -> Tensor:
    """Mean over tokens of ``-log softmax(hidden @ weight.T)[target]``.

    hidden: (..., d_model); weight: (vocab, d_model); targets: (...) integer ids.
    ``chunk_size``: tokens per chunk (default: about 2^26 logits per chunk).
    """
    if hidden.shape[:-1] != targets.shape:
        raise ValueError(
            f"hidden {tuple(hidden.shape)} and targets {tuple(targets.shape)} disagree on "
            "the leading (token) dimensions"
        )
    if weight.ndim != 2 or weight.shape[1] != hidden.shape[-1]:
        raise ValueError(f"weight must be (vocab, {hidden.shape[-1]}); got {tuple(weight.shape)}")
    chunk = chunk_size or max(1, _CHUNK_ELEMENTS // weight.shape[0])
    return _LinearCrossEntropy.apply(hidden, weight, targets, chunk, compile)


class _LinearCrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(ctx, hidden, weight, targets, chunk: int, compile: bool):
        device = hidden.device.type
        dtype = (
            torch.get_autocast_dtype(device)
            if torch.is_autocast_enabled(device)
            else torch.promote_types(hidden.dtype, weight.dtype)
        )
        h = hidden.reshape(-1, hidden.shape[-1]).to(dtype)
        w = weight.to(dtype)
        t = targets.reshape(-1)
        n = h.shape[0]
        step = _chunk_step_compiled if compile else _chunk_step
        need_h, need_w = ctx.needs_input_grad[:2]
        grad_h = torch.empty_like(h) if need_h else None
        acc = torch.promote_types(dtype, torch.float32)  # accumulators: fp32 at least
        grad_w = weight.new_zeros(weight.shape, dtype=acc) if need_w else None
        loss = hidden.new_zeros((), dtype=acc)
        with torch.autocast(device, enabled=False):
            for i in range(0, n, chunk):
                h_c = h[i : i + chunk]
                loss_c, grad_logits = step(h_c @ w.t(), t[i : i + chunk], 1.0 / n)
                loss += loss_c
                if need_h:
                    torch.mm(grad_logits, w, out=grad_h[i : i + chunk])
                if need_w:
                    grad_w += grad_logits.t() @ h_c
        ctx.save_for_backward(
            grad_h.view(hidden.shape).to(hidden.dtype) if need_h else None,
            grad_w.to(weight.dtype) if need_w else None,
        )
        return loss / n

    @staticmethod
    def backward(ctx, grad_loss):
        grad_h, grad_w = ctx.saved_tensors
        scaled = [None if g is None else g * grad_loss for g in (grad_h, grad_w)]
        return *scaled, None, None, None


def _chunk_step(logits: Tensor, targets: Tensor, scale: float) -> tuple[Tensor, Tensor]:
    """(sum of the chunk's token losses, scale · d loss_i / d logits in the logits' dtype)."""
    x = logits.float() if logits.element_size() < 4 else logits
    lse = x.logsumexp(dim=-1, keepdim=True)
    picked = x.gather(-1, targets.unsqueeze(-1).long())
    loss = (lse - picked).sum()
    vocab = torch.arange(x.shape[-1], device=x.device)
    grad = (x - lse).exp() - (vocab == targets.unsqueeze(-1)).to(x.dtype)
    return loss, (grad * scale).to(logits.dtype)


@functools.cache
def _compiled():
    return torch.compile(_chunk_step, dynamic=True)


def _chunk_step_compiled(logits: Tensor, targets: Tensor, scale: float):
    return _compiled()(logits, targets, scale)
