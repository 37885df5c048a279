"""The fused ops of the engine's decode step (`cs336_common.nn.decode_ops`): the Triton
kernels (in Triton's interpreter on CPU, see the root conftest) against float64 math
written out here, on seeded inputs; on a GPU, the fused step against the model's own."""

import pytest
import torch

from cs336_common import Engine, TransformerLM
from cs336_common.decode_step import StaticStep
from cs336_common.nn import decode_ops as ops
from cs336_common.nn.layers import RMSNorm
from cs336_common.nn.rope import RotaryPositionalEmbedding

from .test_engine import _prompts

DEV = "cuda" if torch.cuda.is_available() else "cpu"


def _randn(*shape, seed=0, scale=1.0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed)) * scale


def _rms_norm64(h, w, eps):
    h = h.double()
    return h / torch.sqrt(h.square().mean(-1, keepdim=True) + eps) * w.double()


@pytest.mark.parametrize("with_residual", [True, False])
def test_triton_add_rms_norm_equals_float64_math(with_residual):
    pytest.importorskip("triton")
    x, r = _randn(5, 48, seed=1, scale=3.0), _randn(5, 48, seed=2)  # 48: a masked block
    w = _randn(48, seed=3)
    residual = r.to(DEV) if with_residual else None
    out, h = ops._triton_add_rms_norm(x.to(DEV), residual, w.to(DEV), 1e-5)
    want_h = x.double() + r.double() if with_residual else x.double()
    torch.testing.assert_close(h.cpu().double(), want_h, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(
        out.cpu().double(), _rms_norm64(want_h, w, 1e-5), rtol=1e-5, atol=1e-5
    )


def test_triton_add_rms_norm_keeps_the_stream_in_bf16_and_norms_it_as_stored():
    pytest.importorskip("triton")
    x, r = (_randn(3, 64, seed=s).bfloat16() for s in (4, 5))
    w = torch.ones(64, dtype=torch.bfloat16)
    out, h = ops._triton_add_rms_norm(x.to(DEV), r.to(DEV), w.to(DEV), 1e-5)
    stream = (x.float() + r.float()).bfloat16()  # one rounding, as the model's bf16 add
    assert h.dtype == out.dtype == torch.bfloat16
    # within one bf16 step (Triton's interpreter may round the cast toward zero)
    torch.testing.assert_close(h.cpu().float(), stream.float(), rtol=2**-7, atol=0)
    want = _rms_norm64(stream, w, 1e-5)
    torch.testing.assert_close(out.cpu().double(), want, rtol=1e-2, atol=1e-2)


def test_triton_rope_write_kv_equals_float64_math():
    pytest.importorskip("triton")
    B, H, D, slots, theta = 4, 3, 8, 5, 500.0
    rope = RotaryPositionalEmbedding(theta, D, 32)
    qkv = _randn(B, 3 * H * D, seed=6)
    positions = torch.tensor([0, 7, 31, 2])
    k_cache, v_cache = _randn(B, H, slots, D, seed=7), _randn(B, H, slots, D, seed=8)
    slot = torch.tensor([3])
    kc, vc = k_cache.clone().to(DEV), v_cache.clone().to(DEV)
    q = ops._triton_rope_write_kv(
        qkv.to(DEV), positions.to(DEV), rope.cos.to(DEV), rope.sin.to(DEV), kc, vc,
        slot.to(DEV),
    )  # fmt: skip
    # by hand: pair (x[2i], x[2i+1]) of every head turns by position * theta^(-2i/D)
    angle = positions.double()[:, None] * theta ** (-torch.arange(0, D, 2).double() / D)
    cos, sin = angle.cos()[:, None], angle.sin()[:, None]  # (B, 1 head, D/2)

    def turned(t):
        t = t.double().view(B, H, D // 2, 2)
        x1, x2 = t[..., 0], t[..., 1]
        return torch.stack((x1 * cos - x2 * sin, x1 * sin + x2 * cos), -1).view(B, H, D)

    q_in, k_in, v_in = qkv.chunk(3, dim=-1)
    torch.testing.assert_close(q.cpu().double()[:, :, 0], turned(q_in), rtol=1e-5, atol=1e-5)
    want_k, want_v = k_cache.double().clone(), v_cache.double().clone()
    want_k[:, :, 3], want_v[:, :, 3] = turned(k_in), v_in.double().view(B, H, D)
    torch.testing.assert_close(kc.cpu().double(), want_k, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(vc.cpu().double(), want_v, rtol=0, atol=0)
    # the PyTorch path (CPU) is the same op
    kc2, vc2 = k_cache.clone(), v_cache.clone()
    q2 = ops.rope_write_kv(qkv, positions, rope, kc2, vc2, slot)
    torch.testing.assert_close(q2.double()[:, :, 0], turned(q_in), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(kc2.double(), want_k, rtol=1e-5, atol=1e-5)


def test_triton_silu_mul_equals_float64_math():
    pytest.importorskip("triton")
    n = 1500  # two blocks of 1024, the second masked
    gate_up = _randn(3, 2 * n, seed=9, scale=4.0)
    out = ops._triton_silu_mul(gate_up.to(DEV))
    g, u = gate_up.double().chunk(2, dim=-1)
    want = g / (1 + torch.exp(-g)) * u
    torch.testing.assert_close(out.cpu().double(), want, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(ops.silu_mul(gate_up).double(), want, rtol=1e-5, atol=1e-5)


def test_add_rms_norm_without_triton_is_the_models_norm():
    norm = RMSNorm(16)
    with torch.no_grad():
        norm.weight.copy_(_randn(16, seed=10))
    x, r = _randn(2, 16, seed=11), _randn(2, 16, seed=12)
    out, h = ops.add_rms_norm(x, r, norm)
    assert torch.equal(h, x + r) and torch.equal(out, norm(x + r))
    out, h = ops.add_rms_norm(x, None, norm)
    assert h is x and torch.equal(out, norm(x))


def test_static_step_fuses_only_the_llama_style_block():
    from .test_engine import GPT2_STYLE, _model

    for variant, fused in (({}, True), (GPT2_STYLE, False), ({"ffn": "silu"}, False)):
        model = _model(**variant)
        cache, _ = Engine(model)._prefill([[1, 2, 3]], extra_slots=0)
        step = StaticStep(model, cache, torch.tensor([0]), torch.tensor([3]), 4, False)
        assert (step.stacked is not None) == fused


@torch.no_grad()
def test_fused_step_with_the_triton_kernels_gives_uncached_logits(monkeypatch):
    """The whole fused step wired to the kernels (interpreted on CPU): strides, slots and
    positions as the engine passes them, against the model's uncached forward."""
    pytest.importorskip("triton")
    from .test_engine import _model

    monkeypatch.setattr(ops, "INTERPRET_ON_CPU", True)  # float32 on CPU too
    model = _model().float().to(DEV)
    prompts = _prompts([5, 1, 9])
    cache, _ = Engine(model)._prefill(prompts, extra_slots=0)
    rows = [0, 2, 0, 1, 2]
    positions = torch.tensor([len(prompts[r]) for r in rows], device=DEV)
    step = StaticStep(model, cache, torch.tensor(rows, device=DEV), positions, 4, False)
    seqs = [list(prompts[r]) for r in rows]
    g = torch.Generator().manual_seed(0)
    for _ in range(4):
        token = torch.randint(50, (len(seqs),), generator=g)
        for s, t in zip(seqs, token.tolist(), strict=True):
            s.append(t)
        want = torch.stack([model(torch.tensor([s], device=DEV))[0, -1] for s in seqs])
        torch.testing.assert_close(step(token.to(DEV)), want, rtol=1e-4, atol=1e-4)


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@torch.no_grad()
def test_fused_step_on_gpu_gives_the_models_logits(dtype):
    torch.manual_seed(0)
    model = TransformerLM(512, 96, 128, 2, 4, 256, attention_backend="torch")
    model = model.to("cuda", dtype).eval()
    prompts = _prompts([7, 30, 16], vocab_size=512)
    cache, _ = Engine(model)._prefill(prompts, extra_slots=0)
    rows = torch.tensor([0, 0, 1, 2, 2], device="cuda")
    positions = torch.tensor([len(prompts[r]) for r in rows.tolist()], device="cuda")
    fused = StaticStep(model, cache, rows, positions, 8, graphs=False)
    plain = StaticStep(model, cache, rows, positions, 8, graphs=False, fused=False)
    assert plain.stacked is None  # the model's own forward
    assert fused.stacked is not None
    g = torch.Generator("cuda").manual_seed(0)
    tol = 1e-4 if dtype == torch.float32 else 0.1  # logits of std ~0.6
    for _ in range(8):
        token = torch.randint(512, (5,), device="cuda", generator=g)
        a, b = fused(token).float(), plain(token).float()
        assert (a - b).abs().max() < tol
        torch.testing.assert_close(fused.gen_k, plain.gen_k, rtol=0.02, atol=0.02)


def test_fused_sampler_merges_the_chunks_of_a_long_vocabulary():
    pytest.importorskip("triton")
    from cs336_common import fused_sampling as fs

    vocab = 2 * fs._CHUNK + 300  # three chunks, the last one short
    x = _randn(6, vocab, seed=13, scale=2.0)
    x[0, -5] = x[1, fs._CHUNK] = x[2, 7] = 40.0  # one token takes (nearly) all the mass
    token, logprob = fs.fused_sample(x.to(DEV), 1.0, torch.Generator(DEV).manual_seed(0))
    token, logprob = token.cpu(), logprob.cpu()
    assert token[:3].tolist() == [vocab - 5, fs._CHUNK, 7]
    want = torch.log_softmax(x.double(), -1).gather(-1, token[:, None])[:, 0]
    torch.testing.assert_close(logprob.double(), want, rtol=1e-5, atol=1e-5)
