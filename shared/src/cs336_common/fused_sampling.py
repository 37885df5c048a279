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
    # each row's vocabulary is cut into chunks, one program each (one program per row
    # is latency bound: a few hundred rows do not fill the GPU); a second kernel merges
    splits = triton.cdiv(vocab, _CHUNK)
    part = torch.empty(3, batch, splits, dtype=torch.float32, device=logits.device)
    part_idx = torch.empty(batch, splits, dtype=torch.int32, device=logits.device)
    _sample_chunk_kernel[(batch, splits)](
        logits, logits.stride(0), vocab, seed, 1.0 / temperature, part, part_idx,
        batch * splits, splits, CHUNK=_CHUNK, BLOCK=1024, num_warps=4,
    )  # fmt: skip
    token = torch.empty(batch, dtype=torch.int64, device=logits.device)
    logprob = torch.empty(batch, dtype=torch.float32, device=logits.device)
    _merge_kernel[(batch,)](
        logits, logits.stride(0), part, part_idx, batch * splits, splits, token, logprob,
        SPLITS=triton.next_power_of_2(splits), num_warps=1,
    )  # fmt: skip
    return token, logprob


_CHUNK = 4096  # vocabulary entries per program


if triton is not None:

    @triton.jit
    def _sample_chunk_kernel(
        X, stride, vocab, SEED, inv_temp, PART, PART_IDX, plane, splits,
        CHUNK: tl.constexpr, BLOCK: tl.constexpr,
    ):  # fmt: skip
        """Over one chunk of a row: the max logit, the sum of exp(logit - max), and the
        best Gumbel-perturbed tempered logit and its index."""
        row = tl.program_id(0).to(tl.int64)
        chunk = tl.program_id(1)
        seed = tl.load(SEED)
        offs = tl.arange(0, BLOCK)
        m = tl.zeros([1], dtype=tl.float32) - 1.0e30  # running max of the logits
        s = tl.zeros([1], dtype=tl.float32)  # running sum of exp(logit - m)
        best = tl.zeros([1], dtype=tl.float32) - float("inf")
        best_idx = tl.zeros([1], dtype=tl.int32)
        end = tl.minimum(chunk * CHUNK + CHUNK, vocab)
        for v0 in range(chunk * CHUNK, end, BLOCK):
            idx = v0 + offs
            valid = idx < vocab
            x = tl.load(X + row * stride + idx, mask=valid, other=-float("inf")).to(tl.float32)
            m_new = tl.maximum(m, tl.max(x, axis=0))
            s = s * tl.exp(m - m_new) + tl.sum(tl.exp(x - m_new), axis=0)
            m = m_new
            # the noise of token idx of a row does not depend on how the row is cut
            u = tl.rand(seed, (row * vocab + idx).to(tl.int32))
            z = tl.where(valid, x * inv_temp - tl.log(-tl.log(u)), -float("inf"))
            z_max = tl.max(z, axis=0)
            z_idx = tl.argmax(z, axis=0).to(tl.int32) + v0
            take = z_max > best  # ties: the first index wins
            best = tl.where(take, z_max, best)
            best_idx = tl.where(take, z_idx, best_idx)
        at = row * splits + chunk + tl.arange(0, 1)
        tl.store(PART + at, m)
        tl.store(PART + plane + at, s)
        tl.store(PART + 2 * plane + at, best)
        tl.store(PART_IDX + at, best_idx)

    @triton.jit
    def _merge_kernel(
        X, stride, PART, PART_IDX, plane, splits, TOKEN, LOGPROB, SPLITS: tl.constexpr
    ):
        """Merge a row's chunks: the overall log-sum-exp and the best draw's index."""
        row = tl.program_id(0).to(tl.int64)
        j = tl.arange(0, SPLITS)
        valid = j < splits
        at = row * splits + j
        m = tl.load(PART + at, mask=valid, other=-1.0e30)
        s = tl.load(PART + plane + at, mask=valid, other=0.0)
        z = tl.load(PART + 2 * plane + at, mask=valid, other=-float("inf"))
        idx = tl.load(PART_IDX + at, mask=valid, other=0)
        m_all = tl.max(m, axis=0)
        s_all = tl.sum(s * tl.exp(m - m_all), axis=0)
        first = tl.argmax(z, axis=0)  # the earliest chunk among equal maxima
        token = tl.sum(tl.where(j == first, idx, 0), axis=0)
        logit = tl.load(X + row * stride + token).to(tl.float32)
        tl.store(TOKEN + row, token.to(tl.int64))
        tl.store(LOGPROB + row, logit - m_all - tl.log(s_all))
