"""The engine's fixed-shape decode step (`_StaticStep`, what CUDA graphs capture): on CPU
without graphs against uncached forwards and the eager engine; on a GPU, graphs against
the eager path. Seeded tiny models, float64 where tokens must match exactly."""

import pytest
import torch

from cs336_common import Engine, SamplingParams
from cs336_common.engine import _StaticStep

from .test_engine import GPT2_STYLE, _greedy_uncached, _model, _prompts

# rows of the 37..35-token prompts end at the context (40) within 5 tokens: half of the
# 18 rows or more finish early, so the batch shrinks (and a GPU captures a second graph)
LENGTHS = [5, 1, 12, 37, 36, 35]


def _static(monkeypatch, graphs=False):
    def stepper(self, cache, positions):
        return _StaticStep(self.model, cache, positions, graphs=graphs)

    monkeypatch.setattr(Engine, "_stepper", stepper)


@pytest.mark.parametrize("variant", [{}, GPT2_STYLE], ids=["rope", "gpt2-style"])
@torch.no_grad()
def test_static_step_gives_uncached_logits_on_a_padded_batch_with_garbage_slots(variant):
    model = _model(**variant)
    prompts = _prompts([5, 1, 9])
    cache, logits = Engine(model)._prefill(prompts, extra_slots=6)
    # slots not written yet may hold anything (select_rows leaves them uninitialised)
    cache.keys[:, :, :, cache.length :] = float("nan")
    cache.values[:, :, :, cache.length :] = float("inf")
    step = _StaticStep(model, cache, torch.tensor([5, 1, 9]), graphs=False)
    rows, seqs = [0, 1, 2], [list(p) for p in prompts]
    g = torch.Generator().manual_seed(0)
    for n in range(6):
        if n == 3:  # drop row 1 and swap the others, as the engine does for finished rows
            rows, seqs = [2, 0], [seqs[2], seqs[0]]
            step.select_rows(torch.tensor([2, 0]))
        token = torch.randint(50, (len(rows),), generator=g)
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
    _static(monkeypatch)
    sizes = []
    monkeypatch.setattr(_StaticStep, "select_rows", _record(_StaticStep.select_rows, sizes))
    out = Engine(model, eos_id=eos).generate(prompts, SamplingParams(20, 0.0, num_samples=3))
    assert [[c.ids for c in s] for s in out] == [[w] * 3 for w in want]
    # checked every 8 steps: at step 8, half or more of the 18 rows had finished
    assert sizes == [3 * sum(len(w) > 8 for w in want)] and sizes[0] <= 9


def _record(fn, sizes):
    def wrapped(self, keep):
        sizes.append(len(keep))
        return fn(self, keep)

    return wrapped


def test_static_engine_samples_like_the_eager_one(monkeypatch):
    model = _model()
    with torch.no_grad():
        model.lm_head.weight.mul_(0.1)  # flat distributions: the samples differ
    prompts = _prompts([3, 9, 1])
    params = SamplingParams(10, temperature=0.8, top_k=20, top_p=0.95, num_samples=4, seed=3)
    eager = Engine(model).generate(prompts, params)
    _static(monkeypatch)
    static = Engine(model).generate(prompts, params)
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
@torch.no_grad()
def test_cuda_graphs_in_bf16_score_their_tokens_like_a_full_forward():
    torch.manual_seed(0)
    model = _model(vocab_size=512, context_length=96, attention_backend="torch")
    model = model.to("cuda", torch.bfloat16)
    with torch.no_grad():
        model.lm_head.weight.mul_(0.25)  # logits of std ~2: peaked, not one-hot
    prompts = _prompts([7, 30, 16], vocab_size=512)
    out = Engine(model).generate(prompts, SamplingParams(40, num_samples=4, seed=0))
    for p, samples in zip(prompts, out, strict=True):
        for c in samples:
            logits = model(torch.tensor([p + c.ids], device="cuda"))[0, len(p) - 1 : -1]
            want = torch.log_softmax(logits.float(), -1)
            want = want.gather(-1, torch.tensor(c.ids, device="cuda")[:, None])[:, 0]
            got = torch.tensor(c.logprobs, device="cuda")
            torch.testing.assert_close(got, want, rtol=0, atol=0.1)
