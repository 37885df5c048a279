"""Tokenizing prompt/response pairs and scoring responses under a model: per-token
log-probabilities and entropies, for Hugging Face models and `TransformerLM` alike."""

from __future__ import annotations

from typing import Any

import torch

from cs336_alignment.text_tokenizer import as_text_tokenizer


def tokenize_prompt_and_output(
    prompt_strs: list[str], output_strs: list[str], tokenizer: Any
) -> dict[str, torch.Tensor]:
    """Tokenize each prompt and output separately, concatenate, right-pad to the longest.

    Returns ``input_ids`` (all tokens but the last), ``labels`` (all but the first) and
    ``response_mask`` (1 where a label is an output token), each (batch, max_len - 1).
    """
    if len(prompt_strs) != len(output_strs):
        raise ValueError(
            f"{len(prompt_strs)} prompts but {len(output_strs)} outputs; they pair one to one"
        )
    tok = as_text_tokenizer(tokenizer)
    prompts = [tok.bos_ids + tok.encode(p) for p in prompt_strs]
    outputs = [tok.encode(o) for o in output_strs]
    return pack_ids(prompts, outputs, tok.pad_id)


def pack_ids(prompts: list[list[int]], outputs: list[list[int]], pad_id: int):
    """`tokenize_prompt_and_output` on token ids (e.g. sampled completions, as sampled)."""
    width = max(len(p) + len(o) for p, o in zip(prompts, outputs, strict=True))
    ids = torch.full((len(prompts), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(prompts), width), dtype=torch.bool)
    for i, (p, o) in enumerate(zip(prompts, outputs, strict=True)):
        ids[i, : len(p) + len(o)] = torch.tensor(p + o, dtype=torch.long)
        mask[i, len(p) : len(p) + len(o)] = True
    return {"input_ids": ids[:, :-1], "labels": ids[:, 1:], "response_mask": mask[:, 1:]}


def compute_entropy(logits: torch.Tensor) -> torch.Tensor:
    """Entropy of softmax(logits) over the last dim: ``logsumexp(z) - sum(p * z)``."""
    logits = logits.float()
    lse = torch.logsumexp(logits, dim=-1)
    p = torch.softmax(logits, dim=-1)
    return lse - (p * logits).sum(dim=-1)


def model_logits(model: Any, input_ids: torch.Tensor) -> torch.Tensor:
    """Logits of a HF causal LM (its ``.logits``) or of a `TransformerLM` (a tensor)."""
    out = model(input_ids)
    return out if isinstance(out, torch.Tensor) else out.logits


def get_response_log_probs(
    model: Any,
    input_ids: torch.Tensor,
    labels: torch.Tensor,
    return_token_entropy: bool = False,
) -> dict[str, torch.Tensor]:
    """``log_probs[b, t] = log p(labels[b, t] | input_ids[b, :t+1])``, (batch, seq), in
    float32; with ``return_token_entropy`` also ``token_entropy`` (batch, seq)."""
    logits = model_logits(model, input_ids).float()
    # log p(label) = z[label] - logsumexp(z): no (batch, seq, vocab) log-softmax copy
    picked = logits.gather(-1, labels.unsqueeze(-1)).squeeze(-1)
    result = {"log_probs": picked - torch.logsumexp(logits, dim=-1)}
    if return_token_entropy:
        with torch.no_grad():
            result["token_entropy"] = compute_entropy(logits)
    return result
