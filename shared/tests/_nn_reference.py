"""Independent references for the model tests, written with PyTorch's own layers
(nn.Linear, nn.Embedding, nn.RMSNorm, F.scaled_dot_product_attention) and a float64
complex-number RoPE. They share nothing with cs336_common.nn but the state-dict names."""

import torch
import torch.nn.functional as F
from torch import nn


def rope_reference(x, positions, theta):
    """Rotate consecutive pairs (x[2i], x[2i+1]) by positions · theta^(-2i/d), in float64
    via complex multiplication. x: (..., seq, d); positions broadcastable to (..., seq)."""
    d = x.shape[-1]
    freqs = theta ** (-torch.arange(0, d, 2, dtype=torch.float64) / d)
    angles = positions.double()[..., None] * freqs
    xc = torch.complex(x[..., 0::2].double(), x[..., 1::2].double())
    out = xc * torch.polar(torch.ones_like(angles), angles)
    return torch.stack((out.real, out.imag), dim=-1).flatten(-2).to(x.dtype)


def attention_reference(attn, x, positions, num_heads, theta):
    """Causal MHSA from an nn.Module holding q/k/v/output_proj weights."""
    *lead, s, d = x.shape
    heads = lambda t: t.reshape(*lead, s, num_heads, d // num_heads).transpose(-3, -2)  # noqa: E731
    q, k, v = (heads(F.linear(x, getattr(attn, f"{n}_proj").weight)) for n in "qkv")
    if theta is not None:
        pos = positions[..., None, :]
        q, k = rope_reference(q, pos, theta), rope_reference(k, pos, theta)
    out = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    return F.linear(out.transpose(-3, -2).reshape(*lead, s, d), attn.output_proj.weight)


class _Proj(nn.Module):
    def __init__(self, d):
        super().__init__()
        for n in ("q_proj", "k_proj", "v_proj", "output_proj"):
            setattr(self, n, nn.Linear(d, d, bias=False))


class _FFN(nn.Module):
    def __init__(self, d, d_ff):
        super().__init__()
        self.w1, self.w3 = nn.Linear(d, d_ff, bias=False), nn.Linear(d, d_ff, bias=False)
        self.w2 = nn.Linear(d_ff, d, bias=False)

    def forward(self, x):
        return self.w2(F.silu(self.w1(x)) * self.w3(x))


class ReferenceLM(nn.Module):
    """The standard pre-norm RoPE + SwiGLU LM, with the course's state-dict names."""

    def __init__(self, vocab_size, d_model, num_layers, num_heads, d_ff, rope_theta):
        super().__init__()
        self.num_heads, self.theta = num_heads, rope_theta
        self.token_embeddings = nn.Embedding(vocab_size, d_model)
        self.layers = nn.ModuleList()
        for _ in range(num_layers):
            block = nn.Module()
            block.attn = _Proj(d_model)
            block.ln1, block.ln2 = nn.RMSNorm(d_model, eps=1e-5), nn.RMSNorm(d_model, eps=1e-5)
            block.ffn = _FFN(d_model, d_ff)
            self.layers.append(block)
        self.ln_final = nn.RMSNorm(d_model, eps=1e-5)
        self.lm_head = nn.Linear(d_model, vocab_size, bias=False)

    def forward(self, ids):
        x = self.token_embeddings(ids)
        pos = torch.arange(ids.shape[-1])
        for b in self.layers:
            x = x + attention_reference(b.attn, b.ln1(x), pos, self.num_heads, self.theta)
            x = x + b.ffn(b.ln2(x))
        return self.lm_head(self.ln_final(x))
