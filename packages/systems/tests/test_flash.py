"""FlashAttention-2 (PyTorch and Triton) against float64 attention on fresh random inputs.

Without CUDA the Triton kernels run on the CPU through Triton's interpreter, which must be
switched on before triton is first imported: the root ``conftest.py`` sets
``TRITON_INTERPRET=1`` when CUDA is absent.
"""

import math

import pytest
import torch

from cs336_common import ModelConfig, TransformerLM
from cs336_common.nn import flash_attention as flash_triton
from cs336_systems.attention_backend import flash_attention_backend
from cs336_systems.flash_pytorch import FlashAttentionPyTorch
from cs336_systems.flash_triton import FlashAttentionTriton

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
# ‖out − ref‖ / ‖ref‖ bounds: exact fp32 rounding, then 16-bit tensor-core inputs
TOLERANCE = {torch.float32: 2e-5, torch.float16: 3e-3, torch.bfloat16: 2e-2}
IMPLEMENTATIONS = {"pytorch": FlashAttentionPyTorch, "triton": FlashAttentionTriton}


@pytest.fixture(autouse=True)
def _exact_float32_matmuls():
    """float32 cases expect exact products whatever earlier tests in the process set
    (CUDA training switches to TF32); the TF32 test opts in itself."""
    previous = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("highest")
    yield
    torch.set_float32_matmul_precision(previous)


def _usable(impl: str, dtype: torch.dtype) -> None:
    if impl != "triton" or DEVICE == "cuda":
        return
    if not flash_triton._INTERPRET:
        pytest.skip("flash_triton was imported before TRITON_INTERPRET=1 was set")
    if dtype == torch.bfloat16:
        pytest.skip("Triton's CPU interpreter multiplies bf16 bit patterns as integers")


def _reference(q, k, v, is_causal):
    """float64 attention -> (O, L) with L = logsumexp of the scaled scores per query."""
    q, k, v = (t.double() for t in (q, k, v))
    s = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    if is_causal:
        n = q.shape[-2]
        s = s.masked_fill(torch.ones(n, n, dtype=torch.bool, device=q.device).triu(1), -math.inf)
    return torch.softmax(s, dim=-1) @ v, torch.logsumexp(s, dim=-1)


def _rel_err(x, ref):
    # absolute below unit norm: a single key makes dQ and dK exactly zero
    return ((x.double() - ref).norm() / ref.norm().clamp_min(1.0)).item()


def _inputs(shape, dtype, seed, n_kv=None):
    g = torch.Generator(device=DEVICE).manual_seed(seed)
    kv_shape = (*shape[:-2], n_kv or shape[-2], shape[-1])

    def rand(s):
        return torch.randn(s, generator=g, device=DEVICE, dtype=dtype).requires_grad_()

    return rand(shape), rand(kv_shape), rand(kv_shape)


def _check_against_reference(impl, shape, dtype, is_causal, seed=0, n_kv=None):
    q, k, v = _inputs(shape, dtype, seed, n_kv)
    out = IMPLEMENTATIONS[impl].apply(q, k, v, is_causal)
    saved = out.grad_fn.saved_tensors
    grad_out = torch.randn_like(out)
    grads = torch.autograd.grad(out, (q, k, v), grad_out)
    q64, k64, v64 = (t.detach().double().requires_grad_() for t in (q, k, v))
    ref_out, ref_lse = _reference(q64, k64, v64, is_causal)
    ref_grads = torch.autograd.grad(ref_out, (q64, k64, v64), grad_out.double())

    tol = TOLERANCE[dtype]
    assert out.dtype == dtype and out.shape == q.shape
    assert len(saved) == 5, "saves exactly Q, K, V, O, L"
    lse = saved[-1]
    assert lse.shape == q.shape[:-1]
    assert _rel_err(lse, ref_lse) < 1e-5, "L is computed in float32 for every input dtype"
    assert _rel_err(out, ref_out) < tol
    for name, g, ref in zip("QKV", grads, ref_grads, strict=True):
        assert g.shape == ref.shape and g.dtype == dtype
        assert _rel_err(g, ref) < tol, f"d{name}"


SHAPES = [(1, 1, 16), (2, 17, 24), (3, 100, 64), (2, 33, 128)]


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16], ids=str)
@pytest.mark.parametrize("is_causal", [False, True], ids=["full", "causal"])
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_matches_float64_attention(impl, shape, dtype, is_causal):
    _usable(impl, dtype)
    _check_against_reference(impl, shape, dtype, is_causal, seed=hash((shape, is_causal)) % 1000)


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
def test_batch_heads_layout_and_strided_views(impl):
    """(batch, heads, seq, d) input, here as the LM makes it: heads transposed out of a view."""
    _usable(impl, torch.float32)
    x = torch.randn(3, 2, 37, 3, 32, device=DEVICE)  # q, k, v stacked, each (batch, seq, heads, d)
    q, k, v = (t.transpose(1, 2) for t in x)
    out = IMPLEMENTATIONS[impl].apply(q, k, v, True)
    ref, _ = _reference(q, k, v, True)
    assert out.shape == (2, 3, 37, 32)
    assert _rel_err(out, ref) < TOLERANCE[torch.float32]


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
def test_fewer_queries_than_keys(impl):
    """A decoding step: one query against a longer, non-causal key/value sequence."""
    _usable(impl, torch.float32)
    _check_against_reference(impl, (2, 1, 32), torch.float32, False, seed=3, n_kv=45)
    _check_against_reference(impl, (1, 20, 16), torch.float32, False, seed=4, n_kv=7)


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
def test_shape_errors_are_clear(impl):
    _usable(impl, torch.float32)
    q = torch.randn(2, 8, 16, device=DEVICE)
    with pytest.raises(ValueError, match="as many queries as keys"):
        IMPLEMENTATIONS[impl].apply(q, q[:, :4], q[:, :4], True)
    with pytest.raises(ValueError, match="expects Q"):
        IMPLEMENTATIONS[impl].apply(q, q[..., :8], q, False)
    with pytest.raises(ValueError, match="expects Q"):  # leading dims must match, no broadcast
        IMPLEMENTATIONS[impl].apply(q, q[:1], q[:1], False)


def test_triton_rejects_unsupported_inputs():
    _usable("triton", torch.float32)
    q = torch.randn(1, 8, 160, device=DEVICE)
    with pytest.raises(ValueError, match=r"head dims 1\.\.128"):
        FlashAttentionTriton.apply(q, q, q, False)
    q = torch.randn(1, 8, 16, device=DEVICE, dtype=torch.float64)
    with pytest.raises(TypeError, match="one dtype"):
        FlashAttentionTriton.apply(q, q, q, False)


def _lm_logits_and_grads(cfg, backend, ids):
    torch.manual_seed(0)
    model = TransformerLM.from_config(ModelConfig(**{**cfg, "attention_backend": backend}))
    model.to(ids.device)
    logits = model(ids)
    logits.square().mean().backward()
    return logits, [p.grad for p in model.parameters()]


@pytest.mark.parametrize(
    "backend",
    [
        flash_attention_backend,
        pytest.param(lambda q, k, v, c: FlashAttentionTriton.apply(q, k, v, c), id="triton"),
    ],
)
def test_lm_with_flash_backend_matches_naive(backend):
    if backend is not flash_attention_backend:
        _usable("triton", torch.float32)
    cfg = dict(vocab_size=64, context_length=40, d_model=48, num_layers=2, num_heads=3)
    ids = torch.randint(0, 64, (2, 40), generator=torch.Generator().manual_seed(1)).to(DEVICE)
    logits, grads = _lm_logits_and_grads(cfg, backend, ids)
    ref_logits, ref_grads = _lm_logits_and_grads(cfg, "naive", ids)
    assert _rel_err(logits, ref_logits.double()) < 1e-5
    for g, ref in zip(grads, ref_grads, strict=True):
        assert _rel_err(g, ref.double()) < 1e-4


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
@pytest.mark.parametrize("is_causal", [False, True], ids=["full", "causal"])
@pytest.mark.parametrize("shape", [(4, 2, 1024, 64), (2, 4, 3000, 128), (8, 1, 4097, 16)], ids=str)
def test_triton_large_on_gpu(shape, dtype, is_causal):
    _check_against_reference("triton", shape, dtype, is_causal, seed=7)


@pytest.mark.gpu
def test_triton_under_torch_compile():
    compiled = torch.compile(FlashAttentionTriton.apply)
    q, k, v = _inputs((2, 2, 512, 64), torch.bfloat16, seed=11)
    out = compiled(q, k, v, True)
    out.sum().backward()
    ref, _ = _reference(q, k, v, True)
    assert _rel_err(out, ref) < TOLERANCE[torch.bfloat16]
    assert all(t.grad is not None and torch.isfinite(t.grad).all() for t in (q, k, v))


def _max_abs_errors(fn, q, k, v, grad_out, refs):
    out = fn(q, k, v, True)
    got = (out, *torch.autograd.grad(out, (q, k, v), grad_out))
    return [(g.double() - r).abs().max().item() for g, r in zip(got, refs, strict=True)]


@pytest.mark.gpu
@pytest.mark.parametrize("d", [64, 128])
def test_triton_error_no_worse_than_torch_sdpa(d):
    """Max abs error of O, dQ, dK, dV against float64, next to PyTorch's default SDPA
    (cuDNN on Hopper) on the same bf16 inputs."""
    import torch.nn.functional as F

    q, k, v = _inputs((2, 4, 2048, d), torch.bfloat16, seed=21)
    grad_out = torch.randn_like(q)
    q64, k64, v64 = (t.detach().double().requires_grad_() for t in (q, k, v))
    ref_out, _ = _reference(q64, k64, v64, True)
    refs = (ref_out, *torch.autograd.grad(ref_out, (q64, k64, v64), grad_out.double()))
    ours = _max_abs_errors(FlashAttentionTriton.apply, q, k, v, grad_out, refs)
    theirs = _max_abs_errors(
        lambda *a: F.scaled_dot_product_attention(*a[:3], is_causal=True), q, k, v, grad_out, refs
    )
    for name, a, b in zip(("O", "dQ", "dK", "dV"), ours, theirs, strict=True):
        assert a <= 1.25 * b, f"{name}: ours {a:.2e} vs SDPA {b:.2e}"


@pytest.mark.gpu
def test_backward_is_bitwise_reproducible():
    """No atomics: two backward passes on the same inputs agree bit for bit."""
    q, k, v = _inputs((2, 2, 1500, 64), torch.bfloat16, seed=31)
    grad_out = torch.randn_like(q)

    def grads():
        out = FlashAttentionTriton.apply(q, k, v, True)
        return torch.autograd.grad(out, (q, k, v), grad_out)

    for a, b in zip(grads(), grads(), strict=True):
        assert torch.equal(a, b)


@pytest.mark.gpu
@pytest.mark.parametrize("is_causal", [False, True], ids=["full", "causal"])
def test_triton_tf32_on_gpu(is_causal):
    """float32 inputs with TF32 allowed run on the tensor cores (their own configs)."""
    previous = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("high")
    try:
        q, k, v = _inputs((2, 3, 1000, 64), torch.float32, seed=41)
        out = FlashAttentionTriton.apply(q, k, v, is_causal)
        grads = torch.autograd.grad(out, (q, k, v), torch.ones_like(out))
    finally:
        torch.set_float32_matmul_precision(previous)
    q64, k64, v64 = (t.detach().double().requires_grad_() for t in (q, k, v))
    ref, _ = _reference(q64, k64, v64, is_causal)
    ref_grads = torch.autograd.grad(ref, (q64, k64, v64), torch.ones_like(ref))
    assert _rel_err(out, ref) < 5e-3
    for g, r in zip(grads, ref_grads, strict=True):
        assert _rel_err(g, r) < 5e-3


@pytest.mark.gpu
def test_tma_loads_match_pointer_loads(monkeypatch):
    """On Hopper the streamed tiles come through TMA descriptors (zeros past the end, head
    dim 48 padded to 64); masked pointer loads (other GPUs, unaligned views) give the same
    numbers bit for bit, and a view with unaligned rows takes that path."""
    if torch.cuda.get_device_capability()[0] < 9:
        pytest.skip("TMA descriptors need compute capability 9.0")
    q, k, v = _inputs((2, 3, 1000, 48), torch.bfloat16, seed=51)
    grad_out = torch.randn_like(q)
    assert flash_triton._kernel_meta(48, True, q.dtype, q, k, v)["USE_TMA"]

    def run(q, k, v):
        out = FlashAttentionTriton.apply(q, k, v, True)
        return (out, *torch.autograd.grad(out, (q, k, v), grad_out))

    with_tma = run(q, k, v)
    monkeypatch.setattr(flash_triton, "_TMA", False)
    for a, b in zip(with_tma, run(q, k, v), strict=True):
        assert torch.equal(a, b)
    monkeypatch.setattr(flash_triton, "_TMA", True)
    wide = torch.zeros(2, 3, 1000, 50, device="cuda", dtype=torch.bfloat16)
    unaligned = [wide.clone()[..., 1:49].copy_(t.detach()).requires_grad_() for t in (q, k, v)]
    assert not flash_triton._kernel_meta(48, True, q.dtype, *unaligned)["USE_TMA"]
    for a, b in zip(with_tma, run(*unaligned), strict=True):
        assert torch.equal(a, b)
