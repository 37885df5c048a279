"""The learnable building blocks: Linear, Embedding, RMSNorm and the feed-forwards.

Built from ``nn.Parameter`` and tensor ops only. Every learnable tensor is called
``weight`` so ``module.load_state_dict({"weight": w})`` works.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from cs336_common.nn.functional import silu


def _trunc_normal_(w: Tensor, std: float) -> Tensor:
    return nn.init.trunc_normal_(w, mean=0.0, std=std, a=-3 * std, b=3 * std)


class Linear(nn.Module):
    """``y = x Wᵀ`` without bias. weight: (out_features, in_features).

    Init: truncated normal N(0, 2/(in+out)) cut at ±3σ.
    x: (..., in_features) -> (..., out_features).
    """

    def __init__(self, in_features: int, out_features: int, device=None, dtype=None):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.weight = nn.Parameter(
            torch.empty(out_features, in_features, device=device, dtype=dtype)
        )
        self.reset_parameters()

    def reset_parameters(self) -> None:
        _trunc_normal_(self.weight, math.sqrt(2.0 / (self.in_features + self.out_features)))

    def forward(self, x: Tensor) -> Tensor:
        return x @ self.weight.t()

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}"


class Embedding(nn.Module):
    """Row lookup ``weight[ids]``. weight: (num_embeddings, embedding_dim).

    Init: truncated N(0, 1) cut at ±3. ids: (...) int -> (..., embedding_dim).
    """

    def __init__(self, num_embeddings: int, embedding_dim: int, device=None, dtype=None):
        super().__init__()
        self.num_embeddings, self.embedding_dim = num_embeddings, embedding_dim
        self.weight = nn.Parameter(
            torch.empty(num_embeddings, embedding_dim, device=device, dtype=dtype)
        )
        self.reset_parameters()

    def reset_parameters(self) -> None:
        _trunc_normal_(self.weight, 1.0)

    def forward(self, token_ids: Tensor) -> Tensor:
        return self.weight[token_ids]

    def extra_repr(self) -> str:
        return f"num_embeddings={self.num_embeddings}, embedding_dim={self.embedding_dim}"


class RMSNorm(nn.Module):
    """``x / sqrt(mean(x²) + eps) * weight`` over the last dim, computed in float32
    and cast back to the input dtype (bf16 activations would lose the small mean).

    x: (..., d_model) -> same shape and dtype. weight (gain) starts at 1.
    """

    def __init__(self, d_model: int, eps: float = 1e-5, device=None, dtype=None):
        super().__init__()
        self.d_model, self.eps = d_model, eps
        self.weight = nn.Parameter(torch.ones(d_model, device=device, dtype=dtype))

    def reset_parameters(self) -> None:
        nn.init.ones_(self.weight)

    def forward(self, x: Tensor) -> Tensor:
        in_dtype = x.dtype
        x = x.float()
        x = x * torch.rsqrt(x.square().mean(dim=-1, keepdim=True) + self.eps)
        return (x * self.weight).to(in_dtype)

    def extra_repr(self) -> str:
        return f"{self.d_model}, eps={self.eps}"


class LayerNorm(nn.Module):
    """``(x - mean) / sqrt(var + eps) * weight + bias`` over the last dim, in at least
    float32 and cast back (as `RMSNorm`). x: (..., d_model) -> same. weight starts at 1, bias at 0.
    """

    def __init__(self, d_model: int, eps: float = 1e-5, device=None, dtype=None):
        super().__init__()
        self.d_model, self.eps = d_model, eps
        self.weight = nn.Parameter(torch.ones(d_model, device=device, dtype=dtype))
        self.bias = nn.Parameter(torch.zeros(d_model, device=device, dtype=dtype))

    def reset_parameters(self) -> None:
        nn.init.ones_(self.weight)
        nn.init.zeros_(self.bias)

    def forward(self, x: Tensor) -> Tensor:
        in_dtype = x.dtype
        x = x.to(torch.promote_types(in_dtype, torch.float32))
        x = x - x.mean(dim=-1, keepdim=True)
        x = x * torch.rsqrt(x.square().mean(dim=-1, keepdim=True) + self.eps)
        return (x * self.weight + self.bias).to(in_dtype)

    def extra_repr(self) -> str:
        return f"{self.d_model}, eps={self.eps}"


def default_d_ff(d_model: int) -> int:
    """SwiGLU's usual hidden size: 8/3·d_model rounded up to a multiple of 64."""
    return 64 * math.ceil(8 * d_model / 3 / 64)


class SwiGLU(nn.Module):
    """Gated feed-forward ``w2(silu(w1 x) * w3 x)``.

    w1, w3: (d_ff, d_model), w2: (d_model, d_ff). x: (..., d_model) -> (..., d_model).
    """

    def __init__(self, d_model: int, d_ff: int | None = None, device=None, dtype=None):
        super().__init__()
        d_ff = default_d_ff(d_model) if d_ff is None else d_ff
        self.w1 = Linear(d_model, d_ff, device=device, dtype=dtype)
        self.w2 = Linear(d_ff, d_model, device=device, dtype=dtype)
        self.w3 = Linear(d_model, d_ff, device=device, dtype=dtype)

    def forward(self, x: Tensor) -> Tensor:
        # w1 and w3 read the same x: one GEMM over their stacked weights (the parameters
        # stay separate, so state-dict keys are unchanged)
        gate, up = (x @ torch.cat((self.w1.weight, self.w3.weight)).t()).chunk(2, dim=-1)
        return self.w2(silu(gate) * up)


class _UngatedFeedForward(nn.Module):
    """Ungated feed-forward ``w2(act(w1 x))``, ``act`` given by the subclass.

    w1: (d_ff, d_model), w2: (d_model, d_ff). x: (..., d_model) -> (..., d_model).
    """

    def __init__(self, d_model: int, d_ff: int, device=None, dtype=None):
        super().__init__()
        self.w1 = Linear(d_model, d_ff, device=device, dtype=dtype)
        self.w2 = Linear(d_ff, d_model, device=device, dtype=dtype)

    @staticmethod
    def activation(h: Tensor) -> Tensor:
        raise NotImplementedError

    def forward(self, x: Tensor) -> Tensor:
        return self.w2(self.activation(self.w1(x)))


class SiLUFeedForward(_UngatedFeedForward):
    """``w2(silu(w1 x))``: the ablation of SwiGLU's gate."""

    @staticmethod
    def activation(h: Tensor) -> Tensor:
        return silu(h)


class GeLUFeedForward(_UngatedFeedForward):
    """GPT-2's feed-forward ``w2(gelu(w1 x))`` with the exact (erf) GeLU."""

    @staticmethod
    def activation(h: Tensor) -> Tensor:
        return 0.5 * h * (1.0 + torch.erf(h * 0.7071067811865476))  # x·Φ(x), 1/√2 inside erf
