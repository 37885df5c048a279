"""The engine's fixed-shape decode step (`StaticStep`, what CUDA graphs capture): on CPU
without graphs against uncached forwards and the eager engine; on a GPU, graphs against
the eager path. Seeded tiny models, float64 where tokens must match exactly."""

import pytest
import torch

from cs336_common import Engine, SamplingParams, TransformerLM
from cs336_common import fused_sampling as fs
from cs336_common.decode_step import StaticStep
from cs336_common.nn import decode_attention as da

from .test_engine import GPT2_STYLE, _greedy_uncached, _model, _prompts

# rows of the 37..35-token prompts end at the context (40) within 5 tokens: half of the
# 18 rows or more finish early, so the batch shrinks (and a GPU captures a second graph)
LENGTHS = [5, 1, 12, 37, 36, 35]


@pytest.mark.parametrize("variant", [{}, GPT2_STYLE], ids=["rope", "gpt2-style"])
@torch.no_grad()
def test_static_step_gives_uncached_logits_for_samples_of_padded_prompts(variant):
    model = _model(**variant)
    prompts = _prompts([5, 1, 9])
    cache, _ = Engine(model)._prefill(prompts, extra_slots=0)
    rows = [0, 2, 0, 1, 2]  # samples: rows share their prompt's cache
    positions = torch.tensor([len(prompts[r]) for r in rows])
    step = StaticStep(model, cache, torch.tensor(rows), positions, 6, graphs=False)
    seqs = [list(prompts[r]) for r in rows]
    g = torch.Generator().manual_seed(0)
    for n in range(6):
        if n == 3:  # drop rows and reorder the others, as the engine does
            seqs = [seqs[3], seqs[0], seqs[1]]
            step.select_rows(torch.tensor([3, 0, 1]))
        token = torch.randint(50, (len(seqs),), generator=g)
        for s, t in zip(seqs, token.tolist(), strict=True):
            s.append(t)
        logits = step(token)
        want = torch.stack([model(torch.tensor([s]))[0, -1] for s in seqs])
        torch.testing.assert_close(logits, want, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("variant", [{}, GPT2_STYLE], ids=["rope", "gpt2-style"])
def test_static_engine_greedy_equals_uncached_per_row(monkeypatch, variant):
    model = _model(**variant)
    prompts = _prompts(LENGTHS)
    eos = _greedy_uncached(model, prompts[0], 20)[4]
    want = [_greedy_uncached(model, p, 20, eos) for p in prompts]
    assert len(want[3]) == 3 and len(want[5]) == 5 and want[0][-1] == eos
    sizes = []
    monkeypatch.setattr(StaticStep, "select_rows", _record(StaticStep.select_rows, sizes))
    engine = Engine(model, eos_id=eos, static_step=True)
    out = engine.generate(prompts, SamplingParams(20, 0.0, num_samples=3))
    assert [[c.ids for c in s] for s in out] == [[w] * 3 for w in want]
    # checked every 8 steps: at step 8, half or more of the 18 rows had finished
    assert sizes == [3 * sum(len(w) > 8 for w in want)] and sizes[0] <= 9


def _record(fn, sizes):
    def wrapped(self, keep):
        sizes.append(len(keep))
        return fn(self, keep)

    return wrapped


def test_cuda_graphs_on_cpu_are_refused_by_name():
    engine = Engine(_model(), cuda_graphs=True)
    with pytest.raises(ValueError, match="cuda_graphs=True needs a CUDA device"):
        engine.generate([[1, 2]], SamplingParams(3))
    assert Engine(_model(), cuda_graphs=False).generate([[1, 2]], SamplingParams(3, 0.0))


def test_static_engine_samples_like_the_eager_one():
    model = _model()
    with torch.no_grad():
        model.lm_head.weight.mul_(0.1)  # flat distributions: the samples differ
    prompts = _prompts([3, 9, 1])
    params = SamplingParams(10, temperature=0.8, top_k=20, top_p=0.95, num_samples=4, seed=3)
    eager = Engine(model).generate(prompts, params)
    static = Engine(model, static_step=True).generate(prompts, params)
    # no row finishes early, so both draw the same noise for the same rows
    assert [[c.ids for c in s] for s in static] == [[c.ids for c in s] for s in eager]
    assert len({tuple(c.ids) for c in static[0]}) > 1
    for s, e in zip(static, eager, strict=True):
        for a, b in zip(s, e, strict=True):
            assert a.logprobs == pytest.approx(b.logprobs, rel=1e-9, abs=1e-9)


@pytest.mark.gpu
def test_cuda_graphs_greedy_equals_uncached_and_shrinks_the_batch():
    model = _model()
    prompts = _prompts(LENGTHS)
    eos = _greedy_uncached(model, prompts[0], 20)[4]
    want = [_greedy_uncached(model, p, 20, eos) for p in prompts]  # on CPU
    engine = Engine(model.cuda(), eos_id=eos)
    out = engine.generate(prompts, SamplingParams(20, 0.0, num_samples=3))
    assert [[c.ids for c in s] for s in out] == [[w] * 3 for w in want]
    eager = Engine(model, eos_id=eos, cuda_graphs=False).generate(
        prompts, SamplingParams(20, 0.0, num_samples=3)
    )
    for s, e in zip(out, eager, strict=True):
        for a, b in zip(s, e, strict=True):
            assert a.logprobs == pytest.approx(b.logprobs, rel=1e-9, abs=1e-9)
    # static_step=False turns the default graphs off (the model's forward on a GPU)
    plain = Engine(model, eos_id=eos, static_step=False)
    assert plain.generate(prompts, SamplingParams(20, 0.0, num_samples=3)) == eager
    with pytest.raises(ValueError, match="cuda_graphs=True needs the static step"):
        Engine(model, cuda_graphs=True, static_step=False).generate(prompts, SamplingParams(2))


@pytest.mark.gpu
def test_cuda_graphs_sample_like_the_eager_path():
    model = _model().cuda()
    with torch.no_grad():
        model.lm_head.weight.mul_(0.1)
    prompts = _prompts([3, 9, 1, 20])
    params = SamplingParams(24, temperature=0.8, top_p=0.95, num_samples=8, seed=5)
    graphs = Engine(model).generate(prompts, params)
    eager = Engine(model, cuda_graphs=False).generate(prompts, params)
    assert [[c.ids for c in s] for s in graphs] == [[c.ids for c in s] for s in eager]
    assert len({tuple(c.ids) for c in graphs[0]}) > 1


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@torch.no_grad()
def test_cuda_graphs_score_their_tokens_like_a_full_forward(dtype):
    torch.manual_seed(0)
    # d_head 32: the decode step runs the Triton kernels (the tiny models' 8 cannot)
    model = TransformerLM(512, 96, 128, 2, 4, 256, attention_backend="torch")
    model = model.to("cuda", dtype).eval()
    with torch.no_grad():
        model.lm_head.weight.mul_(5)  # logits of std ~2: peaked, not one-hot
    prompts = _prompts([7, 30, 16], vocab_size=512)
    out = Engine(model).generate(prompts, SamplingParams(40, num_samples=4, seed=0))
    errors = []
    for p, samples in zip(prompts, out, strict=True):
        assert len({tuple(c.ids) for c in samples}) > 1
        for c in samples:
            logits = model(torch.tensor([p + c.ids], device="cuda"))[0, len(p) - 1 : -1]
            want = torch.log_softmax(logits.float(), -1)
            want = want.gather(-1, torch.tensor(c.ids, device="cuda")[:, None])[:, 0]
            errors.append((torch.tensor(c.logprobs, device="cuda") - want).abs())
    errors = torch.cat(errors)
    if dtype == torch.float32:
        assert errors.max() < 1e-3
    else:  # bf16 rounding differs between the two paths; a wrong mask costs O(1)
        assert errors.median() < 0.05 and errors.max() < 0.5


def test_fused_sampler_has_the_law_of_the_tempered_softmax_and_scores_its_tokens():
    pytest.importorskip("triton")  # on CPU it runs in Triton's interpreter (conftest)
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    probs = torch.tensor([0.1, 0.5, 0.15, 0.25, 0.0], dtype=torch.float64)
    rows = 20000 if dev == "cuda" else 600  # the interpreter runs each row in Python
    logits = (2 * probs.log()).expand(rows, 5).to(dev, torch.float32)
    token, logprob = fs.fused_sample(logits, 2.0, torch.Generator(dev).manual_seed(0))
    share = torch.bincount(token.cpu(), minlength=5).double() / len(token)
    torch.testing.assert_close(share, probs, rtol=0, atol=0.06)  # 3 binomial stds at 600
    want = torch.log_softmax(logits, -1).gather(-1, token[:, None])[:, 0]  # at T = 1
    torch.testing.assert_close(logprob, want, rtol=1e-5, atol=1e-5)
    # a vocabulary of several blocks; the seed repeats a draw, another differs
    x = torch.randn(16, 5000, generator=torch.Generator().manual_seed(1)).to(dev)
    a, _ = fs.fused_sample(x, 1.0, torch.Generator(dev).manual_seed(3))
    b, _ = fs.fused_sample(x, 1.0, torch.Generator(dev).manual_seed(3))
    c, _ = fs.fused_sample(x, 1.0, torch.Generator(dev).manual_seed(4))
    assert torch.equal(a, b) and not torch.equal(a, c) and int(a.max()) >= 2048


def test_triton_decode_attention_equals_the_reference():
    pytest.importorskip("triton")  # on CPU it runs in Triton's interpreter (conftest)
    g = torch.Generator().manual_seed(0)
    B, H, D, P, Tp, G = 6, 3, 16, 3, 9, 70  # more slots than one block of 64
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    q = torch.randn(B, H, 1, D, generator=g).to(dev)
    gk, gv = (torch.randn(B, H, G, D, generator=g).to(dev) for _ in range(2))
    pk, pv = (torch.randn(P, H, Tp, D, generator=g).to(dev) for _ in range(2))
    mask = torch.rand(P, Tp, generator=g) > 0.3
    mask[:, -1] = True  # left padding: a prompt's last slot is real
    prompt_of = torch.tensor([0, 0, 1, 2, 2, 1], device=dev)
    args = (q, pk, pv, mask.to(dev), prompt_of, gk, gv, torch.tensor([66], device=dev))
    want = da.reference_decode_attention(*args)
    torch.testing.assert_close(da._triton_decode_attention(*args), want, rtol=1e-5, atol=1e-5)
    int8_args = (*args[:3], args[3].to(torch.int8), *args[4:])
    for config in da._CONFIGS:  # any of them may be the one picked at run time
        torch.testing.assert_close(da._launch(*int8_args, *config), want, rtol=1e-5, atol=1e-5)
    # the reference itself: row 1 (prompt 0) by hand, slots 0..66 of its own cache
    k = torch.cat((pk[0][:, mask[0].to(dev)], gk[1, :, :67]), 1)
    v = torch.cat((pv[0][:, mask[0].to(dev)], gv[1, :, :67]), 1)
    hand = torch.softmax(q[1] @ k.transpose(-1, -2) / D**0.5, -1) @ v
    torch.testing.assert_close(want[1], hand, rtol=1e-5, atol=1e-5)
