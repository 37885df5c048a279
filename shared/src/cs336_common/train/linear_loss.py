"""`linear_cross_entropy(hidden, weight, targets)`: the LM head and the cross-entropy in one
op, with one pass over the (tokens, vocab) logits instead of three.

The logits are the largest tensor of a training step (128 × 256 tokens × a 10k vocabulary
is 0.66 GB in bf16): the LM head writes them, the loss reads them, backward reads them
again and writes their gradient of the same size. Here, per chunk of tokens, one GEMM
writes the logits, one Triton kernel (`_xent_kernel`) reads each row once and writes the
row's loss and, over the logits, their gradient ``softmax - onehot(target)``, and two
GEMMs turn that into the gradients of the hidden states and of the weight, all in the
forward pass. Backward only multiplies those two small tensors by ``grad_loss / tokens``.
FLOPs: the same three matmuls as the separate head; memory: one chunk of logits, freed
before backward, instead of logits kept for it.

    loss = linear_cross_entropy(model.features(x), model.lm_head.weight, y)
    # == cross_entropy(model(x), y), without the logits

Precision follows autocast: under bf16 autocast the matmuls take bf16 operands (fp32
accumulation) and the logits and their gradient are bf16, as with the separate LM head;
the softmax and the loss are computed in fp32 (float64 for float64 inputs). The weight's
gradient is summed over chunks in fp32.

The chunk loop is one opaque custom op (``cs336_common::linear_cross_entropy``), so the
function also traces into a ``torch.compile(fullgraph=True)`` graph with the model
around it. Where the kernel cannot run (CPU without ``TRITON_INTERPRET=1``, float64, no
Triton), each chunk's softmax is computed with torch ops, which ``compile=True`` fuses
with ``torch.compile``; on CUDA ``compile`` changes nothing.
"""

from __future__ import annotations

import functools

import torch
from torch import Tensor

from cs336_common.train import _xent_kernel

# Logits per chunk: 2^30 (2 GiB in bf16). Up to that the whole batch is one chunk (the
# TinyStories step's 32768 tokens × 10k classes are 0.3 · 2^30), so each GEMM runs once
# at its most efficient shape and the weight's gradient needs no running sum. Chunks
# exist to bound memory at large vocabularies (50k classes × 32768 tokens = 1.5 · 2^30
# go in two); a chunk of 2^30 is at least 8k tokens for vocabularies up to 128k, enough
# to keep the GEMMs efficient, and 2 GiB is little next to a training GPU's memory.
_CHUNK_ELEMENTS = 1 << 30


def linear_cross_entropy(
    hidden: Tensor,
    weight: Tensor,
    targets: Tensor,
    *,
    chunk_size: int | None = None,
    compile: bool = False,
) -> Tensor:
    """Mean over tokens of ``-log softmax(hidden @ weight.T)[target]``.

    hidden: (..., d_model); weight: (vocab, d_model); targets: (...) integer ids in
    [0, vocab) (not checked: that would cost a device-to-host sync).
    ``chunk_size``: tokens per chunk (default: all of them, up to 2^30 logits per chunk).
    ``compile``: fuse the softmax with ``torch.compile`` where the Triton kernel cannot run.
    """
    if hidden.shape[:-1] != targets.shape:
        raise ValueError(
            f"hidden {tuple(hidden.shape)} and targets {tuple(targets.shape)} disagree on "
            "the leading (token) dimensions"
        )
    if weight.ndim != 2 or weight.shape[1] != hidden.shape[-1]:
        raise ValueError(f"weight must be (vocab, {hidden.shape[-1]}); got {tuple(weight.shape)}")
    chunk = chunk_size or max(1, _CHUNK_ELEMENTS // weight.shape[0])
    if not torch.is_grad_enabled():
        # forward runs without grad mode and sees requires_grad only: under no_grad
        # (evaluation) it would still compute both gradients, two GEMMs as large as the head
        hidden, weight = hidden.detach(), weight.detach()
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
        need_h, need_w = ctx.needs_input_grad[:2]
        loss, grad_h, grad_w = torch.ops.cs336_common.linear_cross_entropy(
            hidden.reshape(-1, hidden.shape[-1]).to(dtype),
            weight.to(dtype),
            targets.reshape(-1),
            chunk,
            compile,
            need_h,
            need_w,
        )
        ctx.save_for_backward(grad_h, grad_w)
        ctx.hidden_meta = hidden.shape, hidden.dtype
        ctx.weight_dtype = weight.dtype
        ctx.tokens = targets.numel()
        return loss

    @staticmethod
    def backward(ctx, grad_loss):
        grad_h, grad_w = ctx.saved_tensors
        need_h, need_w = ctx.needs_input_grad[:2]
        shape, h_dtype = ctx.hidden_meta
        scale = grad_loss / ctx.tokens
        # the 16-bit products are upcast before the scale multiplies them
        gh = (grad_h.to(h_dtype) * scale).view(shape) if need_h else None
        gw = grad_w.to(ctx.weight_dtype) * scale if need_w else None
        return gh, gw, None, None, None


@torch.library.custom_op("cs336_common::linear_cross_entropy", mutates_args=())
def _forward(
    h: Tensor, w: Tensor, t: Tensor, chunk: int, compile: bool, need_h: bool, need_w: bool
) -> tuple[Tensor, Tensor, Tensor]:
    """h: (tokens, d_model), w: (vocab, d_model), both in the compute dtype; t: (tokens,).
    Returns the mean loss, ``G @ w`` (tokens, d_model) in the compute dtype and ``G.T @ h``
    (vocab, d_model) in fp32 at least, for ``G = softmax(h @ w.T) - onehot(t)``: the
    gradients times the number of tokens. Gradients not asked for are empty."""
    n = h.shape[0]
    acc = torch.promote_types(h.dtype, torch.float32)
    loss = h.new_empty(n, dtype=acc)
    grad_h = h.new_empty(h.shape) if need_h else h.new_empty(0)
    grad_w = None
    fused = _xent_kernel.available(h)
    with torch.autocast(h.device.type, enabled=False):
        for i in range(0, n, chunk):
            h_c, t_c = h[i : i + chunk], t[i : i + chunk]
            logits = h_c @ w.t()
            if fused:
                _xent_kernel.softmax_xent_(logits, t_c, loss[i : i + chunk], need_h or need_w)
            else:
                loss[i : i + chunk], logits = _chunk_step(logits, t_c, compile)
            if need_h:
                torch.mm(logits, w, out=grad_h[i : i + chunk])
            if need_w:
                grad_w = _add_weight_grad(grad_w, logits, h_c, acc)
    if grad_w is None:
        grad_w = w.new_empty(0)
    return loss.mean(), grad_h, grad_w


@_forward.register_fake
def _(h, w, t, chunk, compile, need_h, need_w):
    acc = torch.promote_types(h.dtype, torch.float32)
    return (
        h.new_empty((), dtype=acc),
        h.new_empty(h.shape) if need_h else h.new_empty(0),
        w.new_empty(w.shape, dtype=acc) if need_w else w.new_empty(0),
    )


def _add_weight_grad(grad_w: Tensor | None, g: Tensor, h: Tensor, acc: torch.dtype) -> Tensor:
    """``grad_w + g.T @ h`` (``g.T @ h`` in ``acc`` for the first chunk)."""
    if grad_w is None:
        return (g.t() @ h).to(acc)
    if grad_w.dtype == g.dtype:
        return grad_w.addmm_(g.t(), h)
    # cuBLAS's addmm takes no fp32 sum with 16-bit factors: a (vocab, d_model) temporary
    return grad_w.add_(g.t() @ h)


def _chunk_step(logits: Tensor, targets: Tensor, compile: bool) -> tuple[Tensor, Tensor]:
    step = _compiled_step() if compile else _softmax_step
    return step(logits, targets)


def _softmax_step(logits: Tensor, targets: Tensor) -> tuple[Tensor, Tensor]:
    """The kernel's work in torch ops: (each row's loss, softmax - onehot in the logits'
    dtype). Overwrites ``logits`` (the chunk's own GEMM output): eager, every temporary
    of the chunk's size is another pass over memory. In place, the fused head's forward
    + backward at 2048 tokens × 10k classes on 2 CPU cores takes 357 ms against 412 ms
    unfused (445 ms with temporaries)."""
    x = logits.float() if logits.element_size() < 4 else logits
    targets = targets.unsqueeze(-1).long()
    lse = x.logsumexp(dim=-1, keepdim=True)
    loss = (lse - x.gather(-1, targets)).squeeze(-1)
    grad = x.sub_(lse).exp_().scatter_add_(-1, targets, torch.full_like(lse, -1.0))
    return loss, grad.to(logits.dtype)


@functools.cache
def _compiled_step():
    return torch.compile(_softmax_step, dynamic=True)
