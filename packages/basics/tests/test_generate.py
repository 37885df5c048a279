import math

import pytest
import torch

from cs336_basics import generate
from cs336_basics.generation import generate_ids, sample_next
from cs336_common.nn import ModelConfig, TransformerLM
from cs336_common.tokenizer import Tokenizer

# chi-square 0.999 quantiles by degrees of freedom: a correct sampler fails 1 in 1000 seeds
_CHI2_999 = {1: 10.83, 2: 13.82, 3: 16.27}


def _tiny_model(vocab_size=50, context_length=32, seed=0) -> TransformerLM:
    torch.manual_seed(seed)
    cfg = ModelConfig(
        vocab_size=vocab_size,
        context_length=context_length,
        d_model=32,
        num_layers=2,
        num_heads=4,
        d_ff=64,
    )
    # float64 so that cached and uncached logits cannot differ enough to flip an argmax
    model = TransformerLM.from_config(cfg, dtype=torch.float64)
    with torch.no_grad():  # larger logits than the init gives, so greedy paths vary
        model.lm_head.weight.mul_(20)
    return model.eval()


def _greedy_uncached(model, prompt, max_new_tokens, eos_id=None):
    """Reference: each row alone, the whole sequence re-run for every new token."""
    seq = list(prompt)
    new = []
    while len(new) < max_new_tokens and len(seq) < model.config.context_length:
        with torch.no_grad():
            token = int(model(torch.tensor([seq]))[0, -1].argmax())
        if token == eos_id:
            break
        seq.append(token)
        new.append(token)
    return new


def _ragged_prompts(vocab_size, lengths, seed=1):
    g = torch.Generator().manual_seed(seed)
    return [torch.randint(vocab_size, (n,), generator=g).tolist() for n in lengths]


def test_cached_batched_greedy_matches_uncached_per_row():
    model = _tiny_model()
    prompts = _ragged_prompts(50, [5, 1, 12, 30, 7])  # the 30-token one hits context 32
    want = [_greedy_uncached(model, p, 10) for p in prompts]
    assert len({len(w) for w in want}) > 1 and len(want[3]) == 2
    assert generate_ids(model, prompts, 10, temperature=0.0) == want


def test_each_row_stops_at_its_own_eos():
    model = _tiny_model()
    prompts = _ragged_prompts(50, [4, 9, 2])
    eos_id = _greedy_uncached(model, prompts[0], 10)[3]  # row 0 stops before its 4th token
    want = [_greedy_uncached(model, p, 10, eos_id) for p in prompts]
    assert len(want[0]) == 3 and len(want[1]) == 10  # rows stop at different steps
    assert generate_ids(model, prompts, 10, temperature=0.0, eos_id=eos_id) == want


def test_tiny_top_p_and_tiny_temperature_are_greedy():
    model = _tiny_model()
    prompts = _ragged_prompts(50, [3, 8])
    greedy = generate_ids(model, prompts, 12, temperature=0.0)
    assert generate_ids(model, prompts, 12, top_p=1e-9, seed=0) == greedy
    assert generate_ids(model, prompts, 12, temperature=1e-6, seed=0) == greedy
    # and sampling at temperature 1 does leave the greedy path
    assert generate_ids(model, prompts, 12, seed=0) != greedy


def test_seed_makes_sampling_reproducible():
    model = _tiny_model()
    prompts = _ragged_prompts(50, [3, 8])
    a = generate_ids(model, prompts, 12, top_p=0.9, seed=7)
    assert generate_ids(model, prompts, 12, top_p=0.9, seed=7) == a
    assert generate_ids(model, prompts, 12, top_p=0.9, seed=8) != a


def _chi_square(counts: torch.Tensor, probs: torch.Tensor) -> tuple[float, int]:
    n = counts.sum().item()
    support = probs > 0
    expected = n * probs[support]
    stat = ((counts[support] - expected) ** 2 / expected).sum().item()
    return stat, int(support.sum()) - 1


def test_sampled_first_tokens_follow_tempered_softmax():
    """Many copies of one prompt: the first sampled token's frequencies match
    softmax(logits / T) of the model, computed here in float64."""
    model = _tiny_model(vocab_size=3, seed=2)
    with torch.no_grad():
        model.lm_head.weight.mul_(0.05)  # keep all three tokens likely
    prompt, T, n = [0, 2, 1], 0.7, 20000
    logits = model(torch.tensor([prompt]))[0, -1].detach()
    probs = torch.softmax(logits / T, dim=-1)
    assert probs.min() > 0.05
    draws = generate_ids(model, [prompt] * n, 1, temperature=T, seed=0)
    counts = torch.bincount(torch.tensor(draws).flatten(), minlength=3).double()
    stat, df = _chi_square(counts, probs)
    assert stat < _CHI2_999[df]


@pytest.mark.parametrize(
    ("top_p", "want"),
    [(0.7, [0.625, 0.375, 0.0, 0.0]), (0.4, [1.0, 0.0, 0.0, 0.0]), (0.9, [0.5, 0.3, 0.15, 0.0])],
)
def test_nucleus_keeps_smallest_set_with_mass_top_p(top_p, want):
    p = torch.tensor([0.15, 0.5, 0.05, 0.3], dtype=torch.float64)  # unsorted on purpose
    order = torch.tensor([1, 3, 0, 2])
    want = torch.zeros(4, dtype=torch.float64).scatter(0, order, torch.tensor(want).double())
    want = want / want.sum()
    n = 20000
    logits = p.log().expand(n, 4)
    g = torch.Generator().manual_seed(0)
    counts = torch.bincount(sample_next(logits, 1.0, top_p, g), minlength=4).double()
    assert (counts[want == 0] == 0).all()
    if (want > 0).sum() > 1:
        stat, df = _chi_square(counts, want)
        assert stat < _CHI2_999[df]


def test_bf16_logits_sample_from_float32_probabilities():
    logits = torch.tensor([[0.0, math.log(3.0)]], dtype=torch.bfloat16).expand(4000, 2)
    g = torch.Generator().manual_seed(0)
    share = sample_next(logits, 1.0, 1.0, g).double().mean().item()
    assert abs(share - 0.75) < 0.03


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(temperature=-0.1), "temperature"),
        (dict(temperature=float("nan")), "temperature"),
        (dict(top_p=0.0), "top_p"),
        (dict(top_p=1.5), "top_p"),
        (dict(max_new_tokens=-1), "max_new_tokens"),
    ],
)
def test_bad_sampling_arguments_are_named(kwargs, match):
    args = dict(max_new_tokens=3) | kwargs
    with pytest.raises(ValueError, match=match):
        generate_ids(_tiny_model(), [[1, 2]], **args)


@pytest.mark.parametrize("length", [0, 33])
def test_prompt_lengths_outside_the_context_are_rejected(length):
    with pytest.raises(ValueError, match="prompt 1 has"):
        generate_ids(_tiny_model(), [[1], [1] * length], 3)


def test_zero_new_tokens_and_full_context_give_empty_continuations():
    model = _tiny_model()
    assert generate_ids(model, [[1, 2], [3]], 0) == [[], []]
    assert generate_ids(model, [[1] * 32, [3]], 4, temperature=0)[0] == []


def _byte_tokenizer() -> Tokenizer:
    return Tokenizer({i: bytes([i]) for i in range(256)}, [], special_tokens=["<|endoftext|>"])


def test_generate_text_api_matches_token_api():
    tok = _byte_tokenizer()
    eos = tok.token_id("<|endoftext|>")
    model = _tiny_model(vocab_size=tok.vocab_size, context_length=24)
    prompts = ["Hi", "", "a longer prompt"]
    ids = [tok.encode("Hi"), [eos], tok.encode("a longer prompt")]  # "" starts after an EOS
    want = [tok.decode(n) for n in generate_ids(model, ids, 6, temperature=0, eos_id=eos)]
    assert generate(model, tok, prompts, 6, temperature=0) == want
    assert generate(model, tok, "Hi", 6, temperature=0) == want[0]


def test_generate_eos_token_must_be_a_special_token():
    tok = _byte_tokenizer()
    model = _tiny_model(vocab_size=tok.vocab_size)
    with pytest.raises(ValueError, match="not a special token"):
        generate(model, tok, "Hi", 3, eos_token="</s>")
    with pytest.raises(ValueError, match="empty prompt"):
        generate(model, tok, "", 3, eos_token=None)
    assert isinstance(generate(model, tok, "Hi", 3, eos_token=None, seed=0), str)
