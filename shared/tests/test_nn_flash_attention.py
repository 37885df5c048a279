"""The LM's "flash" attention backend (Triton FlashAttention-2 with RoPE fused on packed
q/k/v) against float64 RoPE + attention, and the model with it against the naive model.

Without CUDA the kernels run in Triton's interpreter (the root conftest switches it on),
float32 only: the interpreter mishandles bf16 products. The kernels' own tests (every
length, head dim, dtype) are systems' test_flash.py.
"""

import math
from dataclasses import replace

import pytest
import torch

from cs336_common.nn import ModelConfig, RotaryPositionalEmbedding, TransformerLM
from cs336_common.nn import flash_attention as fa

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


def _reference(qkv, rope):
    """float64 RoPE + causal softmax attention -> (batch, seq, heads, d_head)."""
    q, k, v = (t.transpose(1, 2).double() for t in qkv.unbind(2))
    q, k = rope.double()(q), rope.double()(k)
    s = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    n = s.shape[-1]
    s = s.masked_fill(torch.ones(n, n, dtype=torch.bool, device=s.device).triu(1), -math.inf)
    return (torch.softmax(s, -1) @ v).transpose(1, 2)


def _check_against_reference(shape, dtype, tol):
    b, s, h, d = shape
    rope = RotaryPositionalEmbedding(10000.0, d, 2 * s, device=DEVICE)
    qkv = torch.randn(b, s, 3, h, d, device=DEVICE, dtype=dtype, requires_grad=True)
    out = fa.flash_attention_rope(qkv, rope.cos[:s], rope.sin[:s])
    assert out.shape == (b, s, h, d) and out.dtype == dtype
    grad_out = torch.randn_like(out)
    out.backward(grad_out)
    x = qkv.detach().double().requires_grad_()
    ref = _reference(x, rope)
    ref.backward(grad_out.double())
    for got, want in ((out, ref), (qkv.grad, x.grad)):
        err = (got.double() - want).norm() / want.norm()
        assert err < tol, (shape, err.item())


@pytest.mark.parametrize("shape", [(2, 37, 3, 16), (1, 64, 2, 32), (2, 21, 2, 24)])
def test_rope_attention_matches_float64(shape):
    _check_against_reference(shape, torch.float32, 2e-5)


def test_rope_attention_without_triton_is_the_same_math(monkeypatch):
    monkeypatch.setattr(fa, "_INTERPRET", False)  # CPU tensors then take PyTorch's SDPA
    if DEVICE == "cuda":
        pytest.skip("on CUDA the Triton path is always taken")
    _check_against_reference((2, 19, 2, 8), torch.float32, 1e-6)


def test_rope_attention_rejects_wrong_shapes():
    rope = RotaryPositionalEmbedding(10000.0, 8, 16)
    with pytest.raises(ValueError, match=r"qkv \(batch, seq, 3, heads, d_head\)"):
        fa.flash_attention_rope(torch.randn(2, 16, 2, 2, 8), rope.cos, rope.sin)
    with pytest.raises(ValueError, match="cos"):
        fa.flash_attention_rope(torch.randn(2, 10, 3, 2, 8), rope.cos, rope.sin)


def _models(backend, dtype=torch.float32):
    cfg = ModelConfig(vocab_size=97, context_length=48, d_model=64, num_layers=2, num_heads=4,
                      d_ff=96, rope_theta=10000.0)  # fmt: skip
    ref = TransformerLM.from_config(cfg, device=DEVICE)
    flash = TransformerLM.from_config(replace(cfg, attention_backend=backend), device=DEVICE)
    flash.load_state_dict(ref.state_dict())
    return ref.to(dtype), flash.to(dtype)


def test_lm_with_flash_backend_matches_naive_lm():
    ref, flash = _models("flash")
    ids = torch.randint(0, 97, (2, 41), device=DEVICE)
    grads = []
    for model in (ref, flash):
        logits = model(ids)
        torch.nn.functional.cross_entropy(logits.flatten(0, 1), ids.flatten()).backward()
        grads.append({n: p.grad for n, p in model.named_parameters()})
    torch.testing.assert_close(flash(ids), ref(ids), rtol=1e-4, atol=1e-4)
    for name, g in grads[0].items():
        torch.testing.assert_close(grads[1][name], g, rtol=1e-4, atol=1e-5, msg=name)
    # explicit positions (or a cache) leave the fused path: same numbers either way
    pos = torch.arange(41, device=DEVICE)
    torch.testing.assert_close(flash(ids, token_positions=pos), flash(ids), rtol=1e-5, atol=1e-5)


@pytest.mark.gpu
def test_lm_with_flash_backend_bf16_compiled_matches_sdpa():
    """bf16 autocast, compiled, as the training step runs it: loss and gradients within
    bf16 noise of the same model on PyTorch's SDPA."""
    ref, flash = _models("torch")[1], _models("flash")[1]
    flash.load_state_dict(ref.state_dict())
    ids = torch.randint(0, 97, (8, 48), device=DEVICE)
    losses, grads = [], []
    for model in (ref, flash):

        def loss_of(x, m=model):
            return m(x).float().logsumexp(-1).mean()

        # the reference runs eagerly: one compilation fewer
        step = torch.compile(loss_of, fullgraph=True) if model is flash else loss_of
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = step(ids)
        loss.backward()
        losses.append(loss.item())
        grads.append(torch.cat([p.grad.flatten() for p in model.parameters()]))
    assert abs(losses[0] - losses[1]) < 1e-2 * abs(losses[0])
    assert ((grads[1] - grads[0]).norm() / grads[0].norm()).item() < 2e-2
