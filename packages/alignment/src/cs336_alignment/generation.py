"""Rollouts through one interface, whatever samples them.

A generator has ``generate(prompts, params) -> list[list[Completion]]`` (one list per
prompt, ``params.num_samples`` completions each) and ``load_weights(model_or_state)``,
with `SamplingParams` / `Completion` from `cs336_common.engine`:

- ``engine``: `cs336_common.engine.Engine` on our `TransformerLM` (default; CPU and GPU);
- ``hf``: Hugging Face ``generate`` (`HFGenerator`), for HF models, or for our model after
  export to ``LlamaForCausalLM``;
- ``vllm``: vLLM's offline ``LLM`` (`VLLMGenerator`), with the ``cs336-alignment[vllm]``
  extra installed (see the README for what it costs).
"""

from __future__ import annotations

import os
from typing import Any, Protocol

import torch
from torch import nn

from cs336_alignment.text_tokenizer import as_text_tokenizer

GENERATORS = ("engine", "hf", "vllm")


class Generator(Protocol):
    def generate(self, prompts: list[str], params: Any) -> list[list[Any]]: ...

    def load_weights(self, state_dict_or_model: Any) -> None: ...


def is_hf_model(model: Any) -> bool:
    return (
        hasattr(model, "generate") and hasattr(model, "config") and hasattr(model, "can_generate")
    )


def make_generator(kind: str, model: nn.Module, tokenizer: Any, device=None) -> Generator:
    """A generator of ``kind`` sampling from ``model`` (shared, not copied, where it can)."""
    if kind == "engine":
        if is_hf_model(model):
            from cs336_common.errors import InputError

            raise InputError("the engine runs our TransformerLM; use --generator hf for HF models")
        from cs336_common.engine import Engine

        return Engine(model, tokenizer, device=device)
    if kind == "hf":
        return HFGenerator(model, tokenizer, device=device)
    if kind == "vllm":
        return VLLMGenerator(model)
    raise ValueError(f"generator must be one of {GENERATORS}, got {kind!r}")


class HFGenerator:
    """Hugging Face ``model.generate`` behind the `Generator` interface. ``model`` may be
    a HF causal LM or our `TransformerLM` (exported to ``LlamaForCausalLM`` once, then
    kept in step by `load_weights`); ``tokenizer`` an HF tokenizer or ours."""

    def __init__(self, model: nn.Module, tokenizer: Any, device=None):
        from cs336_alignment.hf_export import to_hf_model

        self._ours = not is_hf_model(model)
        self.model = to_hf_model(model) if self._ours else model
        if device is not None:
            self.model.to(device)
        self.tok = as_text_tokenizer(tokenizer)

    def load_weights(self, state_dict_or_model: Any) -> None:
        from cs336_alignment.hf_export import to_hf_state_dict

        state = state_dict_or_model
        if isinstance(state, nn.Module):
            state = to_hf_state_dict(state) if self._ours else state.state_dict()
        elif self._ours:
            raise ValueError("pass the TransformerLM itself: its state dict needs remapping")
        self.model.load_state_dict(state, strict=False)

    @torch.inference_mode()
    def generate(self, prompts: list[str], params: Any) -> list[list[Any]]:
        from cs336_common.engine import Completion

        if params.seed is not None:
            torch.manual_seed(params.seed)
        ids = [self.tok.bos_ids + self.tok.encode(p) for p in prompts]
        width = max(map(len, ids))
        device = next(self.model.parameters()).device
        tokens = torch.full((len(ids), width), self.tok.pad_id, dtype=torch.long)
        mask = torch.zeros((len(ids), width), dtype=torch.long)
        for i, p in enumerate(ids):  # left padding, so every prompt ends at the last slot
            tokens[i, width - len(p) :] = torch.tensor(p)
            mask[i, width - len(p) :] = 1
        greedy = params.temperature == 0
        out = self.model.generate(
            input_ids=tokens.to(device),
            attention_mask=mask.to(device),
            do_sample=not greedy,
            temperature=None if greedy else params.temperature,
            top_p=None if greedy else params.top_p,
            top_k=None if greedy else (params.top_k or 0),
            max_new_tokens=params.max_new_tokens,
            num_return_sequences=params.num_samples,
            eos_token_id=self.tok.eos_id,
            pad_token_id=self.tok.pad_id,
            return_dict_in_generate=True,
            output_logits=True,
        )
        new = out.sequences[:, width:].cpu()
        logprobs = torch.stack(out.logits, dim=1).float().log_softmax(-1)
        logprobs = logprobs.gather(-1, new.to(logprobs.device)[..., None])[..., 0].cpu()
        result: list[list[Any]] = [[] for _ in prompts]
        for row in range(new.shape[0]):
            i = row // params.num_samples
            seq, reason = self._cut(new[row].tolist(), params.stop)
            text = self.tok.decode(seq[:-1] if reason == "eos" else seq)
            if reason == "stop":
                text = _before_stop(text, params.stop)
            lp = logprobs[row, : len(seq)].tolist()
            result[i].append(Completion(i, seq, text, lp, reason))
        return result

    def _cut(self, seq: list[int], stop) -> tuple[list[int], str]:
        """Tokens up to EOS (kept) or the token completing a stop string (kept)."""
        if self.tok.eos_id in seq:
            seq, reason = seq[: seq.index(self.tok.eos_id) + 1], "eos"
        else:
            reason = "length"
        if stop:
            for n in range(1, len(seq) + 1):
                if any(s in self.tok.decode(seq[:n]) for s in stop):
                    return seq[:n], "stop"
        return seq, reason


def _before_stop(text: str, stop) -> str:
    cut = min((text.index(s) for s in stop if s in text), default=len(text))
    return text[:cut]


class VLLMGenerator:
    """vLLM's offline ``LLM`` behind the `Generator` interface (the ``cs336-alignment[vllm]``
    extra; needs a GPU). Written against vLLM 0.33. ``model_dir``: a Hugging Face model
    directory (export ours first); ``llm_kwargs`` go to ``vllm.LLM`` (``dtype``,
    ``max_model_len``, ...). The engine core runs in this process
    (``VLLM_ENABLE_V1_MULTIPROCESSING=0``), so `load_weights` hands the policy's tensors
    to vLLM's model without copying them between processes, as TRL's colocate mode does."""

    def __init__(self, model_dir: Any, gpu_memory_utilization: float = 0.5, seed: int = 0,
                 **llm_kwargs):  # fmt: skip
        from pathlib import Path

        from cs336_common.errors import InputError, UserError

        try:
            import vllm
        except ImportError:
            raise UserError(
                "the vllm generator needs vLLM: uv sync --package cs336-alignment --extra vllm"
                " (or pip install 'cs336-alignment[vllm]')"
            ) from None
        model_dir = Path(model_dir)
        if not (model_dir / "config.json").is_file():
            raise InputError(
                f"{model_dir}: vLLM loads Hugging Face model directories (config.json); "
                f"convert ours first: cs336-alignment export {model_dir} HF_DIR"
            )
        os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"
        self._vllm = vllm
        self.llm = vllm.LLM(
            model=str(model_dir),
            gpu_memory_utilization=gpu_memory_utilization,
            seed=seed,
            **llm_kwargs,
        )

    def load_weights(self, state_dict_or_model: Any) -> None:
        """Copy new weights into vLLM's model: an HF state dict, an HF model, or our
        `TransformerLM` (renamed to Llama's keys, as exported)."""
        from cs336_alignment.hf_export import to_hf_state_dict

        state = state_dict_or_model
        if isinstance(state, nn.Module):
            state = state.state_dict() if is_hf_model(state) else to_hf_state_dict(state)
        weights = list(state.items())
        # vLLM's models map HF names onto their fused layers (qkv_proj, gate_up_proj).
        self.llm.apply_model(lambda model: model.load_weights(weights))
        # The prefix cache holds prompt KV computed with the old weights.
        self.llm.reset_prefix_cache()

    def generate(self, prompts: list[str], params: Any) -> list[list[Any]]:
        from cs336_common.engine import Completion

        if params.max_new_tokens == 0:  # vLLM wants max_tokens >= 1
            n = params.num_samples
            return [
                [Completion(i, [], "", [], "length") for _ in range(n)] for i in range(len(prompts))
            ]
        sp = self._vllm.SamplingParams(
            n=params.num_samples,
            temperature=params.temperature,
            top_p=params.top_p,
            top_k=params.top_k or 0,  # 0: no top-k
            max_tokens=params.max_new_tokens,
            stop=list(params.stop),
            seed=params.seed,
            logprobs=0,  # the sampled token's only; raw (temperature 1, unfiltered)
        )
        requests = self.llm.generate(prompts, sp, use_tqdm=False)
        return [[_completion(i, c) for c in r.outputs] for i, r in enumerate(requests)]


def _completion(prompt_index: int, out: Any) -> Any:
    """A vLLM ``CompletionOutput`` as our `Completion`. vLLM keeps the EOS token and the
    tokens that spelled a stop string in ``token_ids`` and cuts both from ``text``;
    ``stop_reason`` is the stop string, a stop token id (e.g. a second EOS from the model's
    generation config) or None (the tokenizer's EOS)."""
    from cs336_common.engine import Completion

    ids = list(out.token_ids)
    logprobs = [pos[tok].logprob for pos, tok in zip(out.logprobs, ids, strict=True)]
    if out.finish_reason == "length":
        reason = "length"
    elif out.finish_reason == "stop":
        reason = "stop" if isinstance(out.stop_reason, str) else "eos"
    else:
        raise RuntimeError(f"vLLM ended a completion with {out.finish_reason!r}")
    return Completion(prompt_index, ids, out.text, logprobs, reason)


def response_text(completion: Any, stop) -> str:
    """The completion's text with the stop string that ended it put back, when there is
    one stop string (the graders look for ``</answer>``, where sampling also stops)."""
    if completion.finish_reason == "stop" and len(stop) == 1:
        return completion.text + stop[0]
    return completion.text
