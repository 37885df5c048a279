"""RoPE and multi-head self-attention against independent float64 / PyTorch references."""

import pytest
import torch

from cs336_common.nn import MultiHeadSelfAttention, RotaryPositionalEmbedding

from ._nn_reference import attention_reference, rope_reference


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.mark.parametrize("lead", [(), (3,), (2, 4)])
@pytest.mark.parametrize(("d_k", "seq", "theta"), [(16, 9, 10000.0), (6, 13, 500.0)])
def test_rope_matches_float64_reference(lead, d_k, seq, theta):
    rope = RotaryPositionalEmbedding(theta, d_k, max_seq_len=64)
    x = torch.randn(*lead, seq, d_k)
    pos = torch.randint(0, 64, (*lead, seq))
    torch.testing.assert_close(rope(x, pos), rope_reference(x, pos, theta), rtol=1e-6, atol=1e-6)
    # default positions are 0..seq-1, also broadcast from a 1-D tensor
    ar = torch.arange(seq)
    torch.testing.assert_close(rope(x), rope_reference(x, ar, theta), rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(rope(x, ar), rope(x))


def test_rope_tables_are_not_in_state_dict_and_need_even_dim():
    rope = RotaryPositionalEmbedding(10000.0, 8, 32)
    assert rope.state_dict() == {}
    assert rope.cos.shape == (32, 4)
    with pytest.raises(ValueError, match="even"):
        RotaryPositionalEmbedding(10000.0, 7, 32)


def test_rope_preserves_norm_and_relative_position():
    rope = RotaryPositionalEmbedding(10000.0, 32, 128)
    q, k = torch.randn(32), torch.randn(32)
    dot = lambda m, n: rope(q[None], torch.tensor([m])) @ rope(k[None], torch.tensor([n])).T  # noqa: E731
    torch.testing.assert_close(dot(10, 3), dot(57, 50), rtol=1e-5, atol=1e-5)
    x = torch.randn(5, 32)
    torch.testing.assert_close(rope(x).norm(dim=-1), x.norm(dim=-1))


@pytest.mark.parametrize("lead", [(2,), (2, 3)])
@pytest.mark.parametrize(("d_model", "heads", "seq"), [(32, 4, 10), (36, 3, 7)])
@pytest.mark.parametrize("use_rope", [True, False])
def test_mhsa_matches_reference(lead, d_model, heads, seq, use_rope):
    theta = 10000.0
    rope = RotaryPositionalEmbedding(theta, d_model // heads, 32) if use_rope else None
    attn = MultiHeadSelfAttention(d_model, heads, rope=rope)
    assert set(attn.state_dict()) == {f"{n}_proj.weight" for n in ("q", "k", "v", "output")}
    x = torch.randn(*lead, seq, d_model)
    pos = torch.randint(0, 32, (*lead, seq))
    ref = attention_reference(attn, x, pos, heads, theta if use_rope else None)
    torch.testing.assert_close(attn(x, pos), ref, rtol=1e-6, atol=1e-6)
    ref0 = attention_reference(attn, x, torch.arange(seq), heads, theta if use_rope else None)
    torch.testing.assert_close(attn(x), ref0, rtol=1e-6, atol=1e-6)


def test_mhsa_is_causal():
    attn = MultiHeadSelfAttention(16, 2)
    x = torch.randn(1, 8, 16)
    y = x.clone()
    y[:, 5:] = torch.randn(1, 3, 16)
    torch.testing.assert_close(attn(x)[:, :5], attn(y)[:, :5])
    assert not torch.allclose(attn(x)[:, 5:], attn(y)[:, 5:])


def test_backends_agree_and_callables_plug_in():
    torch.manual_seed(1)
    rope = RotaryPositionalEmbedding(10000.0, 8, 64)
    naive = MultiHeadSelfAttention(40, 5, rope=rope)
    fused = MultiHeadSelfAttention(40, 5, rope=rope, attention_backend="torch")
    fused.load_state_dict(naive.state_dict())
    calls = []

    def backend(q, k, v, is_causal):
        calls.append((q.shape, is_causal))
        return torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=is_causal)

    custom = MultiHeadSelfAttention(40, 5, rope=rope, attention_backend=backend)
    custom.load_state_dict(naive.state_dict())
    x = torch.randn(3, 19, 40)
    torch.testing.assert_close(fused(x), naive(x), rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(custom(x), naive(x), rtol=1e-6, atol=1e-6)
    assert calls == [((3, 5, 19, 8), True)]


def test_mhsa_rejects_indivisible_heads():
    with pytest.raises(ValueError, match="divisible"):
        MultiHeadSelfAttention(30, 4)
    with pytest.raises(ValueError, match="attention_backend"):
        MultiHeadSelfAttention(32, 4, attention_backend="flash2")
