"""Sampling from a TransformerLM: temperature, nucleus (top-p), batched prompts, KV cache.

Ragged batches need neither padding nor an attention mask: every row shares one
position counter. The shortest prompt's length is prefilled in one call; after that
each step feeds one position per row: the row's next prompt token while it is still
reading its prompt, else the token it just sampled. So each row sees exactly its own
tokens at their true positions, as it would alone, and the cache is never rebuilt.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from cs336_common.nn import TransformerLM, softmax


def sample_next(
    logits: Tensor, temperature: float, top_p: float, generator: torch.Generator | None = None
) -> Tensor:
    """Draw one token per row. logits: (batch, vocab) -> int64 (batch,).

    ``temperature == 0`` is greedy (argmax); otherwise softmax(logits / temperature),
    restricted to the nucleus of mass ``top_p`` and renormalized."""
    if temperature == 0:
        return logits.argmax(dim=-1)
    if logits.element_size() < 4:  # 16-bit logits: sample from float32 probabilities
        logits = logits.float()
    probs = softmax(logits / temperature, dim=-1)
    if top_p < 1.0:
        probs = _nucleus(probs, top_p)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


def _nucleus(probs: Tensor, top_p: float) -> Tensor:
    """Keep the smallest set of most likely tokens whose mass is >= top_p; renormalize.

    Sorted descending, a token is kept iff the mass of the tokens before it is still
    < top_p, so the most likely token always survives."""
    sorted_probs, order = probs.sort(dim=-1, descending=True)
    mass_before = sorted_probs.cumsum(dim=-1) - sorted_probs
    sorted_probs = sorted_probs.masked_fill(mass_before >= top_p, 0.0)
    kept = torch.zeros_like(probs).scatter(-1, order, sorted_probs)
    return kept / kept.sum(dim=-1, keepdim=True)


def _check_sampling(max_new_tokens: int, temperature: float, top_p: float) -> None:
    if max_new_tokens < 0:
        raise ValueError(f"max_new_tokens must be >= 0, got {max_new_tokens}")
    if not temperature >= 0:
        raise ValueError(f"temperature must be >= 0 (0 = greedy), got {temperature}")
    if not 0 < top_p <= 1:
        raise ValueError(f"top_p must be in (0, 1], got {top_p}")


def _new_generator(device: torch.device, seed: int | None) -> torch.Generator:
    generator = torch.Generator(device=device)
    if seed is None:
        generator.seed()
    else:
        generator.manual_seed(seed)
    return generator


@torch.inference_mode()
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
    _check_sampling(max_new_tokens, temperature, top_p)
    ctx = model.config.context_length
    for i, p in enumerate(prompts):
        if not 0 < len(p) <= ctx:
            raise ValueError(f"prompt {i} has {len(p)} tokens; it needs 1 to context_length={ctx}")
    if max_new_tokens == 0:
        return [[] for _ in prompts]
    device = model.lm_head.weight.device
    prompt_len = torch.tensor([len(p) for p in prompts], device=device)
    limit = (prompt_len + max_new_tokens).clamp(max=ctx)  # each row's exclusive end
    tokens = torch.zeros(len(prompts), int(limit.max()), dtype=torch.long, device=device)
    for i, p in enumerate(prompts):
        tokens[i, : len(p)] = torch.tensor(p, dtype=torch.long)
    generator = _new_generator(device, seed)
    cache = model.new_kv_cache(len(prompts))
    pos = int(prompt_len.min())
    end = int(limit.max())  # one host sync per step: where the longest live row stops
    logits = model(tokens[:, :pos], kv_cache=cache)[:, -1]
    while pos < end:
        sampled = sample_next(logits, temperature, top_p, generator)
        reading = pos < prompt_len  # rows still inside their prompt keep its token
        tokens[:, pos] = torch.where(reading, tokens[:, pos], sampled)
        if eos_id is not None:
            hit = ~reading & (sampled == eos_id) & (pos < limit)
            limit = torch.where(hit, pos, limit)
            end = int(limit.max())
        pos += 1
        if pos < end:
            logits = model(tokens[:, pos - 1 : pos], kv_cache=cache)[:, -1]
    return [tokens[i, len(p) : int(limit[i])].tolist() for i, p in enumerate(prompts)]


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
