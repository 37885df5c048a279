"""Engine: batched, cached, padded sampling checked against uncached per-row decoding and
against separate forward passes, on seeded tiny float64 models."""

import pytest
import torch

import cs336_common
from cs336_common import Completion, Engine, ModelConfig, SamplingParams, Tokenizer, TransformerLM
from cs336_common.engine import sample_next

VOCAB = 50


GPT2_STYLE = dict(absolute_positions=True, norm_type="layernorm", ffn="gelu", use_rope=False)


def _model(vocab_size=VOCAB, context_length=40, seed=0, **variant) -> TransformerLM:
    torch.manual_seed(seed)
    cfg = ModelConfig(
        vocab_size=vocab_size,
        context_length=context_length,
        d_model=32,
        num_layers=2,
        num_heads=4,
        d_ff=64,
        **variant,
    )
    # float64 so that cached and uncached logits cannot differ enough to flip an argmax
    model = TransformerLM.from_config(cfg, dtype=torch.float64)
    with torch.no_grad():  # larger logits than the init gives, so greedy paths vary
        model.lm_head.weight.mul_(20)
    return model.eval()


def _prompts(lengths, vocab_size=VOCAB, seed=1):
    g = torch.Generator().manual_seed(seed)
    return [torch.randint(vocab_size, (n,), generator=g).tolist() for n in lengths]


@torch.no_grad()
def _greedy_uncached(model, prompt, max_new_tokens, eos_id=None):
    """Reference: the row alone, the whole sequence re-run for every token (EOS kept)."""
    seq, new = list(prompt), []
    while len(new) < max_new_tokens and len(seq) < model.config.context_length:
        token = int(model(torch.tensor([seq]))[0, -1].argmax())
        new.append(token)
        seq.append(token)
        if token == eos_id:
            break
    return new


def _byte_tokenizer() -> Tokenizer:
    return Tokenizer({i: bytes([i]) for i in range(256)}, [], special_tokens=["<|endoftext|>"])


def _ascii_model(tok: Tokenizer) -> TransformerLM:
    """A model whose greedy picks are ASCII bytes (valid UTF-8, one character each): the
    other tokens' logits are 0, below the largest of 128 random ones. The seed gives
    varied greedy texts."""
    model = _model(vocab_size=tok.vocab_size, seed=3)
    with torch.no_grad():
        model.lm_head.weight[128:] = 0
    return model


@pytest.mark.parametrize("variant", [{}, GPT2_STYLE], ids=["rope", "gpt2-style"])
def test_greedy_ragged_batch_with_samples_equals_uncached_per_row(variant):
    model = _model(**variant)
    prompts = _prompts([5, 1, 12, 37, 7])  # the 37-token prompt hits context 40
    eos = _greedy_uncached(model, prompts[0], 12)[4]  # row 0 stops at its 5th token
    want = [_greedy_uncached(model, p, 12, eos) for p in prompts]
    assert want[0][-1] == eos and len(want[3]) == 3 and len({len(w) for w in want}) > 2
    out = Engine(model, eos_id=eos).generate(prompts, SamplingParams(12, 0.0, num_samples=3))
    assert [len(o) for o in out] == [3] * 5
    for i, samples in enumerate(out):
        for c in samples:
            assert (c.prompt_index, c.ids) == (i, want[i])
            want_reason = "eos" if want[i][-1] == eos else "length"
            assert c.finish_reason == want_reason and c.text == ""


@pytest.mark.parametrize(
    "params",
    [
        SamplingParams(10, temperature=1.0, num_samples=4, seed=0),
        SamplingParams(10, temperature=0.7, top_k=5, top_p=0.9, num_samples=4, seed=1),
    ],
)
def test_logprobs_are_the_models_log_softmax_at_the_sampled_tokens(params):
    model = _model()
    with torch.no_grad():
        model.lm_head.weight.mul_(0.1)  # flatter distributions: samples differ
    prompts = _prompts([3, 9, 1])
    out = Engine(model).generate(prompts, params)
    for p, samples in zip(prompts, out, strict=True):
        assert len({tuple(c.ids) for c in samples}) > 1  # the samples are not copies
        for c in samples:
            assert len(c.ids) == len(c.logprobs) == 10 and c.finish_reason == "length"
            with torch.no_grad():
                logits = model(torch.tensor([p + c.ids]))[0, len(p) - 1 : -1]
            want = torch.log_softmax(logits, -1).gather(-1, torch.tensor(c.ids)[:, None])
            torch.testing.assert_close(torch.tensor(c.logprobs, dtype=torch.float64), want[:, 0])


def test_seed_reproduces_a_call_and_other_seeds_differ():
    model = _model()
    prompts = _prompts([4, 11])
    engine = Engine(model)

    def run(seed):
        return engine.generate(prompts, SamplingParams(8, top_p=0.9, num_samples=2, seed=seed))

    a = run(7)
    assert run(7) == a and run(8) != a


def test_top_k_one_and_tiny_top_p_are_greedy():
    model = _model()
    prompts = _prompts([3, 8])
    engine = Engine(model)
    ids = lambda **kw: [c.ids for (c,) in engine.generate(prompts, SamplingParams(12, **kw))]  # noqa: E731
    greedy = ids(temperature=0.0)
    assert ids(top_k=1, seed=0) == greedy and ids(top_p=1e-9, seed=0) == greedy
    assert ids(seed=0) != greedy


def test_top_k_samples_the_renormalized_k_most_likely_tokens():
    probs = torch.tensor([0.1, 0.5, 0.15, 0.25], dtype=torch.float64)
    logits = probs.log().expand(20000, 4)
    g = torch.Generator().manual_seed(0)
    counts = torch.bincount(sample_next(logits, 1.0, 1.0, g, top_k=2), minlength=4).double()
    assert counts[0] == counts[2] == 0
    share = counts[1] / counts.sum()  # 0.5 / 0.75; binomial std ~ 0.0033
    assert abs(share - 2 / 3) < 0.015


def test_stop_strings_end_the_text_before_the_earliest_one():
    tok = _byte_tokenizer()
    model = _ascii_model(tok)
    prompt = tok.encode("Hi")
    free = Engine(model, tok, eos_id=-1).generate([prompt], SamplingParams(20, 0.0))[0][0]
    text = tok.decode(free.ids)
    assert len(set(text[4:10])) > 2  # the test needs a varied greedy path
    early, late = text[6:9], text[4:7] + "\x00never"  # `early` is the first to complete
    out = Engine(model, tok, eos_id=-1).generate(
        ["Hi", prompt], SamplingParams(20, 0.0, stop=[late, early, text[4:7]], num_samples=2)
    )
    for c in (c for samples in out for c in samples):
        # the stop string text[4:7] ends at byte 7: its tokens are kept, the text cut
        assert (c.finish_reason, c.text, c.ids) == ("stop", text[:4], free.ids[:7])
        assert c.logprobs == pytest.approx(free.logprobs[:7])


class _TextOnlyTokenizer:
    """The interface of a Hugging Face tokenizer that the engine uses: no decode_bytes."""

    def __init__(self, tok: Tokenizer):
        self.tok, self.eos_token_id = tok, tok.token_id("<|endoftext|>")

    def encode(self, text):
        return self.tok.encode(text)

    def decode(self, ids):
        return self.tok.decode(ids)


def test_a_tokenizer_with_only_encode_and_decode_works_the_same():
    tok = _byte_tokenizer()
    model = _ascii_model(tok)
    free = Engine(model, tok, eos_id=-1).generate(["Hi"], SamplingParams(12, 0.0))[0][0]
    text = tok.decode(free.ids)
    params = SamplingParams(12, 0.0, stop=[text[5:8], text[3:5]], num_samples=2)
    ours = Engine(model, tok).generate(["Hi", "Hi!"], params)
    other = Engine(model, _TextOnlyTokenizer(tok))
    assert other.eos_id == tok.token_id("<|endoftext|>")
    assert other.generate(["Hi", "Hi!"], params) == ours
    assert ours[0][0].text == text[:3] and ours[0][0].finish_reason == "stop"


def test_eos_is_kept_in_ids_and_dropped_from_text():
    tok = _byte_tokenizer()
    model = _ascii_model(tok)
    free = Engine(model, tok, eos_id=-1).generate(["ab"], SamplingParams(9, 0.0))[0][0]
    engine = Engine(model, tok, eos_id=free.ids[5])
    (c,) = engine.generate(["ab"], SamplingParams(9, 0.0))[0]
    cut = free.ids.index(free.ids[5]) + 1
    assert (c.finish_reason, c.ids) == ("eos", free.ids[:cut])
    assert c.text == tok.decode(free.ids[: cut - 1])
    assert Engine(model, tok).eos_id == tok.token_id("<|endoftext|>")  # the default


def test_finished_rows_leave_the_batch():
    model = _model(context_length=11)
    batch_sizes = []
    model.register_forward_pre_hook(lambda m, args: batch_sizes.append(args[0].shape[0]))
    out = Engine(model).generate(_prompts([2, 6, 3]), SamplingParams(9, 0.0, num_samples=2))
    assert [len(s[0].ids) for s in out] == [9, 5, 8]  # max_new_tokens, or the context's end
    # prefill of 3 prompts; 6 rows until the 6-token prompt's 2 rows stop after 5 tokens,
    # then 4 until the 3-token prompt's rows stop after 8, then 2
    assert batch_sizes == [3] + [6] * 4 + [4] * 3 + [2]


def test_a_model_in_training_mode_samples_without_dropout_and_stays_in_training():
    model = _model(**GPT2_STYLE, dropout=0.5)
    prompts = _prompts([5, 2])
    params = SamplingParams(6, 0.0, num_samples=2)
    want = Engine(model.eval()).generate(prompts, params)
    model.train()
    assert Engine(model).generate(prompts, params) == want and model.training


def test_load_weights_takes_a_model_or_a_wrapped_state_dict():
    a, b = _model(seed=0), _model(seed=3)
    prompts = _prompts([5, 2])
    params = SamplingParams(6, 0.0)
    want = Engine(b).generate(prompts, params)
    engine = Engine(a)
    assert engine.generate(prompts, params) != want
    engine.load_weights({f"_orig_mod.{k}": v for k, v in b.state_dict().items()})
    assert engine.generate(prompts, params) == want
    engine.load_weights(_model(seed=0))
    assert engine.generate(prompts, params) == Engine(_model(seed=0)).generate(prompts, params)


def test_zero_budget_gives_empty_length_completions():
    model = _model()
    out = Engine(model).generate([[1] * 40, [2, 3]], SamplingParams(0, num_samples=2))
    assert out == [[Completion(i, [], "", [], "length")] * 2 for i in (0, 1)]
    out = Engine(model).generate([[1] * 40, [2, 3]], SamplingParams(3, 0.0))
    assert out[0][0].ids == [] and len(out[1][0].ids) == 3


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(temperature=-1.0), "temperature"),
        (dict(top_p=0.0), "top_p"),
        (dict(top_k=0), "top_k"),
        (dict(num_samples=0), "num_samples"),
        (dict(max_new_tokens=-1), "max_new_tokens"),
        (dict(stop=[""]), "stop"),
    ],
)
def test_bad_sampling_params_are_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SamplingParams(**kwargs)


def test_bad_prompts_are_named():
    engine = Engine(_model())
    with pytest.raises(ValueError, match="prompt 1 has 41 tokens"):
        engine.generate([[1], [1] * 41], SamplingParams(2))
    with pytest.raises(ValueError, match="need a tokenizer"):
        engine.generate(["hello"], SamplingParams(2))
    with pytest.raises(ValueError, match="stop strings need a tokenizer"):
        engine.generate([[1]], SamplingParams(2, stop=["x"]))
    with pytest.raises(TypeError, match="not a str"):
        engine.generate("hello", SamplingParams(2))


def test_engine_names_are_exported_lazily():
    for name in ("Engine", "SamplingParams", "Completion"):
        assert name in cs336_common.__all__ and getattr(cs336_common, name).__name__ == name
