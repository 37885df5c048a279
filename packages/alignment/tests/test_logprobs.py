import pytest
import torch

from cs336_alignment import compute_entropy, get_response_log_probs, tokenize_prompt_and_output

PROMPTS = ["Hello, world!", "What is 2 + 3?", "A"]
OUTPUTS = [" Hi there.", " It is 5, of course", " B C D E"]


@pytest.mark.parametrize("kind", ["hf", "ours"])
def test_tokenize_prompt_and_output_layout(kind, hf_tokenizer, our_tokenizer):
    tok = hf_tokenizer if kind == "hf" else our_tokenizer
    out = tokenize_prompt_and_output(PROMPTS, OUTPUTS, tok)
    pad = hf_tokenizer.eos_token_id
    width = max(
        len(hf_tokenizer(p)["input_ids"]) + len(hf_tokenizer(o)["input_ids"])
        for p, o in zip(PROMPTS, OUTPUTS, strict=True)
    )
    assert out["input_ids"].shape == out["labels"].shape == (3, width - 1)
    for i, (p, o) in enumerate(zip(PROMPTS, OUTPUTS, strict=True)):
        pi, oi = hf_tokenizer(p)["input_ids"], hf_tokenizer(o)["input_ids"]
        full = pi + oi + [pad] * (width - len(pi) - len(oi))
        assert out["input_ids"][i].tolist() == full[:-1]
        assert out["labels"][i].tolist() == full[1:]
        want_mask = [0] * (len(pi) - 1) + [1] * len(oi) + [0] * (width - len(pi) - len(oi))
        assert out["response_mask"][i].int().tolist() == want_mask


def test_both_tokenizers_agree(hf_tokenizer, our_tokenizer):
    a = tokenize_prompt_and_output(PROMPTS, OUTPUTS, hf_tokenizer)
    b = tokenize_prompt_and_output(PROMPTS, OUTPUTS, our_tokenizer)
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_mismatched_lengths_are_refused(hf_tokenizer):
    with pytest.raises(ValueError, match="2 prompts but 1 outputs"):
        tokenize_prompt_and_output(["a", "b"], ["c"], hf_tokenizer)


def test_compute_entropy_matches_torch_distributions():
    torch.manual_seed(1)
    logits = torch.randn(3, 5, 17) * 4
    logits[0, 0, 3] = 80.0  # a near one-hot row must not overflow
    want = torch.distributions.Categorical(logits=logits.double()).entropy()
    torch.testing.assert_close(compute_entropy(logits).double(), want, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("kind", ["hf", "ours"])
def test_get_response_log_probs_matches_log_softmax(kind, qwen, our_lm, hf_tokenizer):
    model = qwen if kind == "hf" else our_lm
    batch = tokenize_prompt_and_output(PROMPTS, OUTPUTS, hf_tokenizer)
    got = get_response_log_probs(model, batch["input_ids"], batch["labels"], True)
    with torch.no_grad():
        out = model(batch["input_ids"])
        logits = (out if isinstance(out, torch.Tensor) else out.logits).double()
    want = torch.log_softmax(logits, -1).gather(-1, batch["labels"][..., None])[..., 0]
    assert got["log_probs"].shape == batch["labels"].shape
    torch.testing.assert_close(got["log_probs"].double(), want, atol=1e-4, rtol=1e-4)
    want_h = torch.distributions.Categorical(logits=logits).entropy()
    torch.testing.assert_close(got["token_entropy"].double(), want_h, atol=1e-4, rtol=1e-4)
    assert "token_entropy" not in get_response_log_probs(model, batch["input_ids"], batch["labels"])


def test_log_probs_carry_gradients(our_lm, hf_tokenizer):
    batch = tokenize_prompt_and_output(PROMPTS, OUTPUTS, hf_tokenizer)
    lp = get_response_log_probs(our_lm, batch["input_ids"], batch["labels"])["log_probs"]
    lp.sum().backward()
    assert our_lm.lm_head.weight.grad is not None
    our_lm.zero_grad(set_to_none=True)


def test_a_bos_adding_tokenizer_puts_bos_before_the_prompt_only():
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    core = Tokenizer(models.WordLevel({"<s>": 0, "</s>": 1, "a": 2, "b": 3}, unk_token="a"))
    core.pre_tokenizer = pre_tokenizers.Whitespace()
    core.post_processor = processors.TemplateProcessing(
        single="<s> $A", special_tokens=[("<s>", 0)]
    )
    tok = PreTrainedTokenizerFast(tokenizer_object=core, bos_token="<s>", eos_token="</s>")
    out = tokenize_prompt_and_output(["a b", "b"], ["b a", "a"], tok)
    assert out["input_ids"].tolist() == [[0, 2, 3, 3], [0, 3, 2, 1]]
    assert out["labels"].tolist() == [[2, 3, 3, 2], [3, 2, 1, 1]]
    assert out["response_mask"].int().tolist() == [[0, 0, 1, 1], [0, 1, 0, 0]]
