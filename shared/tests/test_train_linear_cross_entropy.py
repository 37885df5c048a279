"""`linear_cross_entropy` against PyTorch's own ``F.cross_entropy(F.linear(h, W), t)``."""

import pytest
import torch
import torch.nn.functional as F

from cs336_common.nn import ModelConfig, TransformerLM
from cs336_common.train import cross_entropy, linear_cross_entropy


def _reference(h, w, t):
    return F.cross_entropy(F.linear(h, w).reshape(-1, w.shape[0]), t.reshape(-1))


@pytest.mark.parametrize("chunk", [None, 1, 5, 64])
@pytest.mark.parametrize("lead", [(21,), (3, 7)])
def test_value_and_gradients_match_torch_float64(chunk, lead):
    g = torch.Generator().manual_seed(hash((chunk, lead)) % 2**31)
    h = torch.randn(*lead, 16, generator=g, dtype=torch.float64, requires_grad=True)
    w = torch.randn(37, 16, generator=g, dtype=torch.float64, requires_grad=True)
    t = torch.randint(0, 37, lead, generator=g)
    ours = linear_cross_entropy(h, w, t, chunk_size=chunk)
    ref = _reference(h, w, t)
    torch.testing.assert_close(ours, ref, rtol=1e-12, atol=1e-12)
    # a non-unit incoming gradient reaches both inputs
    got = torch.autograd.grad(3.0 * ours, (h, w))
    want = torch.autograd.grad(3.0 * ref, (h, w))
    for a, b, name in zip(got, want, ("hidden", "weight"), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12, msg=name)


def test_bf16_autocast_matches_the_unfused_head_within_bf16_rounding():
    g = torch.Generator().manual_seed(1)
    h = torch.randn(64, 32, generator=g, requires_grad=True)
    w = (torch.randn(300, 32, generator=g) / 4).requires_grad_()
    t = torch.randint(0, 300, (64,), generator=g)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        ours = linear_cross_entropy(h, w, t, chunk_size=24)
        ref = _reference(h, w, t)
    assert ours.dtype == torch.float32
    torch.testing.assert_close(ours, ref, rtol=1e-2, atol=1e-2)
    got, want = torch.autograd.grad(ours, (h, w)), torch.autograd.grad(ref, (h, w))
    for a, b in zip(got, want, strict=True):
        assert a.dtype == b.dtype == torch.float32
        assert (a - b).norm() / b.norm() < 2e-2


def test_only_requested_gradients():
    h = torch.randn(5, 8, requires_grad=True)
    w = torch.randn(11, 8)  # frozen head
    t = torch.randint(0, 11, (5,))
    (g,) = torch.autograd.grad(linear_cross_entropy(h, w, t), (h,))
    (want,) = torch.autograd.grad(_reference(h, w, t), (h,))
    torch.testing.assert_close(g, want)


def test_model_features_feed_the_fused_loss():
    torch.manual_seed(0)
    cfg = ModelConfig(vocab_size=50, context_length=12, d_model=16, num_layers=2, num_heads=2)
    model = TransformerLM.from_config(cfg).double()
    x, y = torch.randint(0, 50, (2, 2, 12)).unbind(0)
    torch.testing.assert_close(model.lm_head(model.features(x)), model(x))
    fused = linear_cross_entropy(model.features(x), model.lm_head.weight, y, chunk_size=7)
    fused_grads = torch.autograd.grad(fused, list(model.parameters()))
    plain = cross_entropy(model(x), y)
    plain_grads = torch.autograd.grad(plain, list(model.parameters()))
    torch.testing.assert_close(fused, plain)
    for a, b in zip(fused_grads, plain_grads, strict=True):
        torch.testing.assert_close(a, b)


def test_shape_errors_name_the_shapes():
    with pytest.raises(ValueError, match=r"hidden \(4, 8\) and targets \(5,\)"):
        linear_cross_entropy(torch.randn(4, 8), torch.randn(3, 8), torch.zeros(5, dtype=torch.long))
    with pytest.raises(ValueError, match=r"weight must be \(vocab, 8\)"):
        linear_cross_entropy(torch.randn(4, 8), torch.randn(3, 9), torch.zeros(4, dtype=torch.long))


# ---- the Triton kernel (CUDA, or Triton's interpreter on CPU: see the root conftest) ----

DEV = "cuda" if torch.cuda.is_available() else "cpu"


def _kernel_runs_here():
    from cs336_common.train import _xent_kernel

    if not _xent_kernel.available(torch.zeros(1, device=DEV)):
        pytest.skip("the Triton kernel cannot run here (no Triton, or CPU without the interpreter)")


@pytest.fixture
def exact_matmuls():
    """float32 matmuls without TF32 on a GPU (another test may have allowed it)."""
    before = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("highest")
    yield
    torch.set_float32_matmul_precision(before)


def _reference64(h, w, t, grad_loss):
    """float64 loss and gradients, from logits and logsumexp written out."""
    h, w = h.detach().double().requires_grad_(), w.detach().double().requires_grad_()
    logits = h.reshape(-1, h.shape[-1]) @ w.t()
    t = t.reshape(-1, 1)
    loss = (logits.logsumexp(-1) - logits.gather(-1, t).squeeze(-1)).mean()
    return (loss.detach(), *torch.autograd.grad(grad_loss * loss, (h, w)))


@pytest.mark.parametrize(
    "lead, d, vocab, chunk",
    [
        ((19,), 16, 37, None),  # row in registers: 32 classes and a masked piece of 8
        ((2, 9), 24, 300, 5),  # four chunks, the last short
        ((3, 4), 8, 16384, None),  # the longest row held in registers
        ((7,), 8, 16385, 3),  # looped tiles, the last one column
        ((5,), 8, 20000, None),
    ],
)
def test_float32_through_the_kernel_matches_float64(lead, d, vocab, chunk, exact_matmuls):
    _kernel_runs_here()
    g = torch.Generator().manual_seed(vocab + d)
    h = torch.randn(*lead, d, generator=g)
    w = torch.randn(vocab, d, generator=g) / 2
    t = torch.randint(0, vocab, lead, generator=g)
    hh, ww = (x.to(DEV).requires_grad_() for x in (h, w))
    loss = linear_cross_entropy(hh, ww, t.to(DEV), chunk_size=chunk)
    got = (loss, *torch.autograd.grad(3.0 * loss, (hh, ww)))
    want = _reference64(h, w, t, 3.0)
    for a, b, name in zip(got, want, ("loss", "grad_hidden", "grad_weight"), strict=True):
        assert a.dtype == torch.float32, name
        torch.testing.assert_close(a.cpu().double(), b, rtol=1e-4, atol=2e-5, msg=name)


def test_chunks_add_up_to_the_single_chunk_result(exact_matmuls):
    _kernel_runs_here()
    g = torch.Generator().manual_seed(7)
    h = torch.randn(40, 16, generator=g).to(DEV).requires_grad_()
    w = torch.randn(333, 16, generator=g).to(DEV).requires_grad_()
    t = torch.randint(0, 333, (40,), generator=g).to(DEV)
    results = []
    for chunk in (None, 1, 13):
        loss = linear_cross_entropy(h, w, t, chunk_size=chunk)
        results.append((loss, *torch.autograd.grad(loss, (h, w))))
    for other in results[1:]:
        for a, b in zip(results[0], other, strict=True):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("vocab", [33, 50, 16384, 16390])
def test_kernel_writes_each_rows_loss_and_the_gradient_over_the_logits(dtype, vocab):
    from cs336_common.train import _xent_kernel

    _kernel_runs_here()
    g = torch.Generator().manual_seed(vocab)
    logits = (torch.randn(6, vocab, generator=g) * 3).to(dtype)
    t = torch.randint(0, vocab, (6,), generator=g)
    x = logits.double()
    want_loss = x.logsumexp(-1) - x.gather(-1, t[:, None]).squeeze(-1)
    want_grad = x.softmax(-1) - F.one_hot(t, vocab)
    # loss only: the logits stay as they were
    buf, loss = logits.to(DEV), torch.full((6,), float("nan"), device=DEV)
    _xent_kernel.softmax_xent_(buf, t.to(DEV), loss, write_grad=False)
    torch.testing.assert_close(loss.cpu().double(), want_loss, rtol=1e-5, atol=1e-5)
    assert torch.equal(buf.cpu(), logits)
    # with the gradient: written in place, in the logits' dtype, rounded once
    _xent_kernel.softmax_xent_(buf, t.to(DEV), loss, write_grad=True)
    torch.testing.assert_close(loss.cpu().double(), want_loss, rtol=1e-5, atol=1e-5)
    step = 2**-7 if dtype == torch.bfloat16 else 1e-6  # a bf16 ulp just below 1
    assert buf.dtype == dtype
    assert (buf.cpu().double() - want_grad).abs().max() <= step


def test_the_first_call_times_the_candidates_and_keeps_the_fastest(monkeypatch):
    """The tuner's choice, with a stand-in for the GPU timer (the kernel itself runs in
    the interpreter or on the GPU): each fitting candidate is tried once on a sample,
    the fastest is kept for the vocabulary and reused, and the result is right."""
    import triton.testing

    from cs336_common.train import _xent_kernel

    _kernel_runs_here()
    monkeypatch.setattr(_xent_kernel, "_INTERPRET", False)
    monkeypatch.setattr(_xent_kernel, "_picked", {})
    monkeypatch.setattr(_xent_kernel, "_TUNE_ROWS", 2)
    monkeypatch.setattr(_xent_kernel, "_TUNE_MIN_LOGITS", 4 * 5000)
    vocab = 5000  # fits all six candidates
    fake_ms = iter([5.0, 4.0, 3.0, 1.0, 2.0, 6.0])
    tried = []

    def timer(fn, **kwargs):
        fn()
        tried.append(fn)
        return next(fake_ms)

    monkeypatch.setattr(triton.testing, "do_bench", timer)
    g = torch.Generator().manual_seed(5)
    logits = torch.randn(4, vocab, generator=g).to(DEV)
    t = torch.randint(0, vocab, (4,), generator=g).to(DEV)
    for _ in range(2):
        x, loss = logits.clone(), torch.empty(4, device=DEV)
        _xent_kernel.softmax_xent_(x, t, loss, write_grad=True)
        want = logits.double().softmax(-1) - F.one_hot(t, vocab)
        torch.testing.assert_close(x.double(), want, rtol=1e-5, atol=1e-6)
    assert len(tried) == len(_xent_kernel._CANDIDATES)  # timed once, on the first call
    assert list(_xent_kernel._picked.values()) == [_xent_kernel._CANDIDATES[3]]
    # a smaller call (another vocabulary, under the threshold) takes the first candidate
    tried.clear()
    x = logits[:3, :4000].clone()
    _xent_kernel.softmax_xent_(x, t[:3] % 4000, torch.empty(3, device=DEV), write_grad=True)
    assert not tried and len(_xent_kernel._picked) == 1


def test_no_grad_gives_the_loss_alone():
    """Under no_grad (evaluation) only the logits' GEMM runs, even for inputs that
    require grad (a model's weights): not the two gradient GEMMs."""
    g = torch.Generator().manual_seed(3)
    h, w = torch.randn(9, 8, generator=g), torch.randn(21, 8, generator=g)
    t = torch.randint(0, 21, (9,), generator=g)
    hd, wd = h.to(DEV).requires_grad_(), w.to(DEV).requires_grad_()
    with torch.no_grad(), torch.profiler.profile() as prof:
        loss = linear_cross_entropy(hd, wd, t.to(DEV))
    assert not loss.requires_grad
    assert sum(e.count for e in prof.key_averages() if e.key in ("aten::mm", "aten::addmm")) == 1
    torch.testing.assert_close(
        loss.cpu().double(), _reference64(h, w, t, 1.0)[0], rtol=1e-5, atol=1e-6
    )


def test_compile_true_fuses_the_torch_fallback():
    # float64 never takes the Triton kernel: compile=True compiles the torch ops instead
    g = torch.Generator().manual_seed(4)
    h = torch.randn(10, 8, generator=g, dtype=torch.float64, requires_grad=True)
    w = torch.randn(30, 8, generator=g, dtype=torch.float64, requires_grad=True)
    t = torch.randint(0, 30, (10,), generator=g)
    loss = linear_cross_entropy(h, w, t, chunk_size=4, compile=True)
    got = (loss.detach(), *torch.autograd.grad(2.0 * loss, (h, w)))
    for a, b in zip(got, _reference64(h, w, t, 2.0), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


def test_features_and_loss_compile_as_one_graph():
    """fullgraph=True fails on any graph break, so the custom op and the autograd
    Function trace; aot_eager runs the traced forward and backward graphs without
    Inductor's (slow on CPU) code generation."""
    torch.manual_seed(0)
    cfg = ModelConfig(vocab_size=50, context_length=12, d_model=16, num_layers=1, num_heads=2)
    model = TransformerLM.from_config(cfg)
    x, y = torch.randint(0, 50, (2, 2, 12)).unbind(0)
    fused = torch.compile(
        lambda x, y: linear_cross_entropy(model.features(x), model.lm_head.weight, y),
        fullgraph=True,
        backend="aot_eager",
    )
    params = list(model.parameters())
    got = fused(x, y)
    got_grads = torch.autograd.grad(5.0 * got, params)
    want = cross_entropy(model(x), y)
    want_grads = torch.autograd.grad(5.0 * want, params)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    for a, b in zip(got_grads, want_grads, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


@pytest.mark.gpu
@pytest.mark.parametrize("chunk", [None, 1000])
def test_bf16_autocast_on_cuda_is_as_close_to_float64_as_the_compiled_plain_head(chunk):
    g = torch.Generator().manual_seed(11)
    h = torch.randn(4, 1024, 64, generator=g).cuda().requires_grad_()
    w = (torch.randn(10000, 64, generator=g) / 8).cuda().requires_grad_()
    t = torch.randint(0, 10000, (4, 1024), generator=g).cuda()
    plain = torch.compile(lambda h, w, t: cross_entropy(F.linear(h, w), t), fullgraph=True)
    fused = torch.compile(
        lambda h, w, t: linear_cross_entropy(h, w, t, chunk_size=chunk), fullgraph=True
    )
    results = []
    for fn in (fused, plain):
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = fn(h, w, t)
        results.append((loss, *torch.autograd.grad(3.0 * loss, (h, w))))
    exact = _reference64(h, w, t, 3.0)
    for ours, theirs, want, name in zip(*results, exact, ("loss", "hidden", "weight"), strict=True):
        assert ours.dtype == theirs.dtype == torch.float32, name
        err_ours = ((ours.double() - want).norm() / want.norm()).item()
        err_plain = ((theirs.double() - want).norm() / want.norm()).item()
        assert err_ours < 2e-2, name  # bf16 logits and gradients
        assert err_ours <= 1.5 * err_plain + 1e-6, (name, err_ours, err_plain)
