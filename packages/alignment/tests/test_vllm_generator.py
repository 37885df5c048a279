"""`VLLMGenerator` against a stand-in for vLLM's API, injected as ``sys.modules["vllm"]``.

This tests OUR mapping onto vLLM (sampling parameters passed through, outputs converted,
new weights pushed into the engine's model), not vLLM itself, which needs a GPU. The
stand-in copies the surface of vLLM 0.33.0 (the version uv.lock picks for the extra), read
from its source: ``vllm.LLM(model, *, seed, gpu_memory_utilization, **engine_args)``,
``LLM.generate(prompts, sampling_params, *, use_tqdm) -> list[RequestOutput]``,
``LLM.apply_model(func) -> list`` (``func`` gets the model, whose ``load_weights`` takes
``(HF name, tensor)`` pairs), ``LLM.reset_prefix_cache()``; ``SamplingParams`` fields and
checks (``top_k`` 0 or -1 = off, ``max_tokens`` >= 1, temperature in [0, 2], greedy resets
top-k/top-p); ``CompletionOutput`` (``token_ids`` keep the EOS and the tokens that spelled a
stop string, ``text`` drops both, ``logprobs``: one ``{token_id: Logprob}`` per token,
``finish_reason`` "stop"/"length", ``stop_reason``: stop string, stop token id or None).
"""

from __future__ import annotations

import os
import sys
import types
from dataclasses import dataclass

import pytest
import torch

from cs336_alignment.generation import make_generator
from cs336_common.engine import SamplingParams
from cs336_common.errors import InputError

EOS, STOP_TOKEN = 50256, 50255  # the tokenizer's EOS; a second EOS from generation_config


@dataclass
class Logprob:  # vllm.logprobs.Logprob
    logprob: float
    rank: int | None = None
    decoded_token: str | None = None


@dataclass
class CompletionOutput:  # vllm.outputs.CompletionOutput (the fields we read)
    index: int
    text: str
    token_ids: list[int]
    cumulative_logprob: float | None
    logprobs: list[dict[int, Logprob]] | None
    finish_reason: str | None = None
    stop_reason: int | str | None = None


@dataclass
class RequestOutput:  # vllm.outputs.RequestOutput (the fields we read)
    request_id: str
    prompt: str
    outputs: list[CompletionOutput]
    finished: bool = True


class FakeSamplingParams:
    """vllm.SamplingParams: the fields we set, with 0.33's defaults and checks."""

    def __init__(self, n=1, temperature=1.0, top_p=1.0, top_k=0, seed=None, stop=None,
                 max_tokens=16, logprobs=None):  # fmt: skip
        if top_k < -1 or not 0 < top_p <= 1 or not 0 <= temperature <= 2:
            raise ValueError("bad sampling parameters")
        if max_tokens is not None and max_tokens < 1:
            raise ValueError(f"max_tokens must be at least 1, got {max_tokens}.")
        if temperature < 1e-5:  # greedy
            top_p, top_k = 1.0, 0
        self.n, self.temperature, self.top_p, self.top_k = n, temperature, top_p, top_k
        self.seed, self.stop, self.max_tokens, self.logprobs = seed, stop, max_tokens, logprobs


class FakeModel:
    """What ``apply_model`` hands over: a model with vLLM's ``load_weights`` contract,
    here an HF model built from the directory's config.json (as vLLM reads it)."""

    def __init__(self, model_dir):
        from transformers import AutoConfig, AutoModelForCausalLM

        self.hf = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(model_dir))
        torch.nn.init.zeros_(self.hf.lm_head.weight)  # visibly not the policy yet

    def load_weights(self, weights) -> set[str]:
        params = dict(self.hf.named_parameters())
        with torch.no_grad():
            for name, tensor in weights:
                params[name].copy_(tensor)  # an unknown name is a KeyError, as in vLLM
        return {name for name, _ in weights}


class FakeLLM:
    """vllm.LLM: generates what the test scripts, one reply per (prompt, sample index)."""

    replies: dict = {}  # noqa: RUF012 (set by each test)

    def __init__(self, model, *, seed=0, gpu_memory_utilization=0.92, **engine_args):
        self.args = dict(model=model, seed=seed, gpu_memory_utilization=gpu_memory_utilization,
                         **engine_args)  # fmt: skip
        self.in_process = os.environ.get("VLLM_ENABLE_V1_MULTIPROCESSING") == "0"
        self.model = FakeModel(model)
        self.calls: list = []

    def generate(self, prompts, sampling_params=None, *, use_tqdm=True):
        self.calls.append(("generate", sampling_params, use_tqdm))
        return [
            RequestOutput(str(i), p, [self.replies[p, j] for j in range(sampling_params.n)])
            for i, p in enumerate(prompts)
        ]

    def apply_model(self, func):
        return [func(self.model)]

    def reset_prefix_cache(self, reset_running_requests=False, reset_connector=False):
        self.calls.append(("reset_prefix_cache",))
        return True


@pytest.fixture
def fake_vllm(monkeypatch):
    module = types.ModuleType("vllm")
    module.__version__ = "0.33.0"
    module.LLM, module.SamplingParams = FakeLLM, FakeSamplingParams
    monkeypatch.setitem(sys.modules, "vllm", module)
    monkeypatch.delenv("VLLM_ENABLE_V1_MULTIPROCESSING", raising=False)
    return module


def reply(index, ids, text, finish, stop_reason=None):
    lps = [{t: Logprob(-0.5 * (k + 1), rank=1)} for k, t in enumerate(ids)]
    return CompletionOutput(index, text, ids, sum(-0.5 * (k + 1) for k in range(len(ids))),
                            lps, finish, stop_reason)  # fmt: skip


@pytest.fixture
def qwen_dir(qwen, tmp_path):
    qwen.config.save_pretrained(tmp_path)
    return tmp_path


def test_sampling_params_and_outputs_are_mapped(fake_vllm, qwen_dir):
    FakeLLM.replies = {
        ("Q1", 0): reply(0, [11, 12, EOS], "ab", "stop"),
        ("Q1", 1): reply(1, [13, 14], "c", "stop", "</answer>"),  # 14 spells "</answer>"
        ("Q2", 0): reply(0, [15, 16, 17], "efg", "length"),
        ("Q2", 1): reply(1, [18, STOP_TOKEN], "h", "stop", STOP_TOKEN),
    }
    gen = make_generator("vllm", qwen_dir, None)
    assert gen.llm.in_process  # so that load_weights reaches the model in this process
    assert gen.llm.args == dict(model=str(qwen_dir), seed=0, gpu_memory_utilization=0.5)
    params = SamplingParams(3, 0.7, top_p=0.9, top_k=5, stop=("</answer>",), num_samples=2,
                            seed=7)  # fmt: skip
    outs = gen.generate(["Q1", "Q2"], params)

    _, sp, use_tqdm = gen.llm.calls[-1]
    assert (sp.n, sp.temperature, sp.top_p, sp.top_k) == (2, 0.7, 0.9, 5)
    assert (sp.max_tokens, sp.stop, sp.seed, sp.logprobs, use_tqdm) == (
        3, ["</answer>"], 7, 0, False)  # fmt: skip
    got = [[(c.prompt_index, c.ids, c.text, c.finish_reason) for c in row] for row in outs]
    assert got == [
        [(0, [11, 12, EOS], "ab", "eos"), (0, [13, 14], "c", "stop")],
        [(1, [15, 16, 17], "efg", "length"), (1, [18, STOP_TOKEN], "h", "eos")],
    ]
    assert outs[1][0].logprobs == [-0.5, -1.0, -1.5]


def test_top_k_off_greedy_and_zero_new_tokens(fake_vllm, qwen_dir):
    FakeLLM.replies = {("Q", 0): reply(0, [5], "x", "length")}
    gen = make_generator("vllm", qwen_dir, None)
    gen.generate(["Q"], SamplingParams(1, temperature=1.0))
    assert gen.llm.calls[-1][1].top_k == 0  # our None: no top-k (vLLM: 0, or -1)
    gen.generate(["Q"], SamplingParams(1, temperature=0.0, top_k=3))
    assert gen.llm.calls[-1][1].temperature == 0.0
    n = len(gen.llm.calls)
    empty = gen.generate(["Q", "Q"], SamplingParams(0, num_samples=2))  # vLLM refuses 0
    assert len(gen.llm.calls) == n
    assert [[(c.prompt_index, c.ids, c.finish_reason) for c in r] for r in empty] == [
        [(0, [], "length")] * 2, [(1, [], "length")] * 2]  # fmt: skip


def test_new_weights_reach_vllms_model(fake_vllm, qwen, qwen_dir):
    gen = make_generator("vllm", qwen_dir, None)
    ids = torch.randint(
        0, qwen.config.vocab_size, (2, 7), generator=torch.Generator().manual_seed(0)
    )
    assert not torch.allclose(gen.llm.model.hf(ids).logits, qwen(ids).logits)
    gen.load_weights(qwen)
    assert gen.llm.calls[-1] == ("reset_prefix_cache",)  # no prompt KV from old weights
    torch.testing.assert_close(gen.llm.model.hf(ids).logits, qwen(ids).logits)


def test_our_model_reaches_vllm_under_llamas_names(fake_vllm, our_lm, tmp_path):
    from cs336_alignment.hf_export import llama_config

    llama_config(our_lm.config).save_pretrained(tmp_path)
    gen = make_generator("vllm", tmp_path, None)
    gen.load_weights(our_lm)
    ids = torch.randint(0, 50257, (2, 9), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(gen.llm.model.hf(ids).logits, our_lm(ids), atol=1e-4, rtol=1e-4)


def test_our_model_directory_is_refused_with_the_export_command(fake_vllm, tmp_path):
    (tmp_path / "cs336_model.json").write_text("{}")
    with pytest.raises(InputError, match="cs336-alignment export"):
        make_generator("vllm", tmp_path, None)


def test_outputs_of_the_real_vllm_classes_are_mapped():
    """Where vLLM is installed (the extra; no GPU needed for this): its own output and
    parameter classes through our mapping."""
    vllm = pytest.importorskip("vllm")
    from vllm.logprobs import Logprob as RealLogprob
    from vllm.outputs import CompletionOutput as RealOutput

    from cs336_alignment.generation import _completion

    ids = [7, 8, EOS]
    lps = [{t: RealLogprob(-1.0 - k)} for k, t in enumerate(ids)]
    out = RealOutput(0, "ab", ids, -6.0, lps, finish_reason="stop", stop_reason=None)
    c = _completion(3, out)
    assert (c.prompt_index, c.ids, c.text, c.logprobs, c.finish_reason) == (
        3, ids, "ab", [-1.0, -2.0, -3.0], "eos")  # fmt: skip
    sp = vllm.SamplingParams(n=2, temperature=0.7, top_p=0.9, top_k=0, max_tokens=3,
                             stop=["</answer>"], seed=7, logprobs=0)  # fmt: skip
    assert (sp.n, sp.top_k, sp.stop, sp.logprobs) == (2, 0, ["</answer>"], 0)
