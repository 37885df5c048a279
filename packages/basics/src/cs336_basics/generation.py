"""Sampling from a TransformerLM: temperature, nucleus (top-p), batched prompts.

Both functions run on `cs336_common.Engine` (one padded prefill, a KV cache, finished rows
leave the batch); this module keeps assignment 1's signatures.
"""

from __future__ import annotations

from collections.abc import Sequence

from cs336_common.engine import Engine, SamplingParams, sample_next
from cs336_common.nn import TransformerLM

__all__ = ["generate", "generate_ids", "sample_next"]


def generate_ids(
    model: TransformerLM,
    prompts: Sequence[Sequence[int]],
    max_new_tokens: int,
    temperature: float = 1.0,
    top_p: float = 1.0,
    eos_id: int | None = None,
    *,
    seed: int | None = None,
) -> list[list[int]]:
    """Continue each token-id prompt; returns the new ids per prompt (EOS excluded).

    A row stops after ``eos_id``, after ``max_new_tokens`` tokens, or when its sequence
    fills the model's context length."""
    params = SamplingParams(max_new_tokens, temperature, top_p, seed=seed)
    outs = Engine(model, None, eos_id=eos_id).generate(prompts, params)
    return [c.ids[:-1] if c.finish_reason == "eos" else c.ids for (c,) in outs]


def generate(
    model: TransformerLM,
    tokenizer,
    prompt: str | Sequence[str],
    max_new_tokens: int,
    temperature: float = 1.0,
    top_p: float = 1.0,
    eos_token: str | None = "<|endoftext|>",
    *,
    seed: int | None = None,
) -> str | list[str]:
    """Sample continuations of ``prompt`` (one string or a batch of them).

    ``temperature`` 0 is greedy; ``top_p`` < 1 samples from the nucleus. Each row stops
    at ``eos_token`` (a special token of ``tokenizer``; None: never), after
    ``max_new_tokens`` tokens or at the model's context length. An empty prompt starts
    a fresh document, i.e. from ``eos_token``. ``seed`` makes sampling reproducible.
    Returns the continuation (without the prompt or EOS) per prompt."""
    eos_id = None
    if eos_token is not None:
        if eos_token not in tokenizer.special_tokens:
            raise ValueError(
                f"eos_token {eos_token!r} is not a special token of the tokenizer "
                f"({tokenizer.special_tokens}); pass eos_token=None to never stop early"
            )
        eos_id = tokenizer.token_id(eos_token)
    texts = [prompt] if isinstance(prompt, str) else list(prompt)
    ids = [tokenizer.encode(t) or ([] if eos_id is None else [eos_id]) for t in texts]
    if not all(ids):
        raise ValueError("an empty prompt needs an eos_token to start from")
    new_ids = generate_ids(model, ids, max_new_tokens, temperature, top_p, eos_id, seed=seed)
    out = [tokenizer.decode(n) for n in new_ids]
    return out[0] if isinstance(prompt, str) else out
