"""One Triton kernel that samples a token per row and scores it, reading the logits once.

The engine's common case on a GPU (temperature > 0, no top-k, no top-p) otherwise runs
about ten passes over the (batch, vocab) logits: a float32 copy, softmax, noise, argmax,
log-softmax. Here each row is streamed once: an online log-sum-exp for the log-probability
(temperature 1, as `Completion.logprobs` promises) and the Gumbel-max trick,
argmax(logits / T + G) with G = -log(-log U), U ~ Uniform(0, 1) from Philox, which draws
exactly from softmax(logits / T). The Philox seed is drawn from the caller's
``torch.Generator`` on the device, so a seeded call repeats, with no host sync.
"""

from __future__ import annotations

import torch
from torch import Tensor

try:
    import triton
    import triton.language as tl
except ImportError:
    triton = None


def fused_sampling_available(logits: Tensor) -> bool:
    return triton is not None and logits.is_cuda and logits.ndim == 2


def fused_sample(
    logits: Tensor, temperature: float, generator: torch.Generator | None
) -> tuple[Tensor, Tensor]:
    """logits (batch, vocab), any float dtype -> (token int64 (batch,), log-probability
    float32 (batch,) of that token under softmax(logits))."""
    batch, vocab = logits.shape
    if logits.stride(-1) != 1:
        logits = logits.contiguous()
    seed = torch.randint(2**31 - 1, (1,), device=logits.device, generator=generator)
    token = torch.empty(batch, dtype=torch.int64, device=logits.device)
    logprob = torch.empty(batch, dtype=torch.float32, device=logits.device)
    _sample_kernel[(batch,)](
        logits, logits.stride(0), vocab, seed, 1.0 / temperature, token, logprob,
        BLOCK=2048, num_warps=8,
    )  # fmt: skip
    return token, logprob


if triton is not None:

    @triton.jit
    def _sample_kernel(X, stride, vocab, SEED, inv_temp, TOKEN, LOGPROB, BLOCK: tl.constexpr):
        row = tl.program_id(0).to(tl.int64)
        seed = tl.load(SEED)
        offs = tl.arange(0, BLOCK)
        m = tl.zeros([1], dtype=tl.float32) - 1.0e30  # running max of the logits
        s = tl.zeros([1], dtype=tl.float32)  # running sum of exp(logit - m)
        best = tl.zeros([1], dtype=tl.float32) - float("inf")
        best_idx = tl.zeros([1], dtype=tl.int32)
        for v0 in range(0, vocab, BLOCK):
            idx = v0 + offs
            valid = idx < vocab
            x = tl.load(X + row * stride + idx, mask=valid, other=-float("inf")).to(tl.float32)
            m_new = tl.maximum(m, tl.max(x, axis=0))
            s = s * tl.exp(m - m_new) + tl.sum(tl.exp(x - m_new), axis=0)
            m = m_new
            u = tl.rand(seed, (row * vocab + idx).to(tl.int32))
            z = tl.where(valid, x * inv_temp - tl.log(-tl.log(u)), -float("inf"))
            z_max = tl.max(z, axis=0)
            z_idx = tl.argmax(z, axis=0).to(tl.int32) + v0
            take = z_max > best
            best = tl.where(take, z_max, best)
            best_idx = tl.where(take, z_idx, best_idx)
        logit = tl.load(X + row * stride + best_idx).to(tl.float32)
        tl.store(TOKEN + row + tl.arange(0, 1), best_idx.to(tl.int64))
        tl.store(LOGPROB + row + tl.arange(0, 1), logit - m - tl.log(s))
