"""Direct Preference Optimisation (Rafailov et al. 2023), one preference pair at a time."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from cs336_alignment.logprobs import get_response_log_probs, tokenize_prompt_and_output
from cs336_alignment.prompt_templates import alpaca_prompt
from cs336_alignment.text_tokenizer import as_text_tokenizer


def response_log_prob_sums(
    model: Any, tokenizer: Any, prompt: str, responses: list[str]
) -> torch.Tensor:
    """``log pi(response | Alpaca(prompt))`` summed over each response's tokens (the
    response ends with EOS). Shape (len(responses),), on the model's device."""
    tok = as_text_tokenizer(tokenizer)
    eos = "" if tok.eos_id is None else tok.decode([tok.eos_id])
    batch = tokenize_prompt_and_output(
        [alpaca_prompt(prompt)] * len(responses), [r + eos for r in responses], tok
    )
    device = next(model.parameters()).device
    batch = {k: v.to(device) for k, v in batch.items()}
    log_probs = get_response_log_probs(model, batch["input_ids"], batch["labels"])["log_probs"]
    return (log_probs * batch["response_mask"]).sum(dim=-1)


def compute_per_instance_dpo_loss(
    lm: torch.nn.Module,
    lm_ref: torch.nn.Module,
    tokenizer: Any,
    beta: float,
    prompt: str,
    response_chosen: str,
    response_rejected: str,
) -> torch.Tensor:
    """``-log sigmoid(beta * ((log pi_w - log ref_w) - (log pi_l - log ref_l)))``.

    The prompt's own log-probability cancels in each difference, so only the response
    tokens are scored. ``lm_ref`` runs without gradients and may sit on another device.
    """
    pair = [response_chosen, response_rejected]
    policy = response_log_prob_sums(lm, tokenizer, prompt, pair)
    with torch.no_grad():
        ref = response_log_prob_sums(lm_ref, tokenizer, prompt, pair).to(policy.device)
    margin = (policy[0] - ref[0]) - (policy[1] - ref[1])
    return -F.logsigmoid(beta * margin)
