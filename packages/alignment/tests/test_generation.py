"""The HF generator against HF's own forward pass, and against the common engine on the
same weights (our model exported to LlamaForCausalLM)."""

import pytest
import torch

from cs336_alignment.generation import HFGenerator, make_generator, response_text

engine = pytest.importorskip("cs336_common.engine")


def test_hf_generator_logprobs_match_a_forward_pass(qwen, hf_tokenizer):
    gen = HFGenerator(qwen, hf_tokenizer)
    prompts = ["Hello there", "The answer to 2 + 2 is"]
    outs = gen.generate(prompts, engine.SamplingParams(max_new_tokens=6, num_samples=3, seed=0))
    assert [len(o) for o in outs] == [3, 3]
    for i, p in enumerate(prompts):
        for c in outs[i]:
            assert c.prompt_index == i and c.finish_reason in ("length", "eos")
            ids = torch.tensor([hf_tokenizer(p)["input_ids"] + c.ids])
            with torch.no_grad():
                logp = torch.log_softmax(qwen(ids).logits[0].double(), -1)
            n = len(hf_tokenizer(p)["input_ids"])
            want = [logp[n - 1 + t, tok].item() for t, tok in enumerate(c.ids)]
            assert c.logprobs == pytest.approx(want, abs=1e-3)


def test_greedy_engine_and_hf_agree_on_exported_weights(our_tokenizer, make_lm):
    model = make_lm(5, vocab_size=our_tokenizer.vocab_size)
    params = engine.SamplingParams(max_new_tokens=8, temperature=0.0)
    prompts = ["Once upon a time", "1 + 1 ="]
    a = make_generator("engine", model, our_tokenizer).generate(prompts, params)
    b = make_generator("hf", model, our_tokenizer).generate(prompts, params)
    for x, y in zip(a, b, strict=True):
        assert x[0].ids == y[0].ids
        assert x[0].text == y[0].text
        assert x[0].logprobs == pytest.approx(y[0].logprobs, abs=1e-3)


def test_hf_generator_stop_strings_and_weight_sync(our_tokenizer, make_lm):
    model = make_lm(6, vocab_size=our_tokenizer.vocab_size)
    gen = HFGenerator(model, our_tokenizer)
    greedy = engine.SamplingParams(max_new_tokens=12, temperature=0.0)
    text = gen.generate(["abc"], greedy)[0][0].text
    stop = text[3:5]
    assert stop
    cut = gen.generate(["abc"], engine.SamplingParams(12, 0.0, stop=(stop,)))[0][0]
    assert cut.finish_reason == "stop" and stop not in cut.text
    assert response_text(cut, (stop,)).endswith(stop)
    # new policy weights reach the generator
    with torch.no_grad():
        model.lm_head.weight.mul_(-1)
    gen.load_weights(model)
    assert gen.generate(["abc"], greedy)[0][0].text != text


def test_vllm_without_vllm_is_a_one_line_error(tmp_path):
    from cs336_common.errors import UserError

    try:
        import vllm  # noqa: F401
    except ImportError:
        with pytest.raises(UserError, match=r"cs336-alignment\[vllm\]"):
            make_generator("vllm", tmp_path, None)
    else:
        pytest.skip("vLLM is installed")
