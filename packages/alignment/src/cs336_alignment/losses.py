"""The training objectives: SFT's masked NLL, the policy-gradient family (no baseline,
REINFORCE with a group baseline, GRPO-Clip) and group-normalised rewards.

Tensors are (batch, seq) per-token log-probs with a (batch, seq) response mask; rewards
and advantages are (batch, 1) and broadcast over the sequence.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import torch

from cs336_alignment.masked import masked_mean, masked_normalize

LossType = Literal["no_baseline", "reinforce_with_baseline", "grpo_clip"]
LOSS_TYPES = ("no_baseline", "reinforce_with_baseline", "grpo_clip")


def sft_microbatch_train_step(
    policy_log_probs: torch.Tensor,
    response_mask: torch.Tensor,
    gradient_accumulation_steps: int,
    normalize_constant: float = 1.0,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Masked NLL summed over each sequence, divided by ``normalize_constant``, averaged
    over the batch and scaled by ``1 / gradient_accumulation_steps``; calls backward."""
    per_seq = masked_normalize(-policy_log_probs, response_mask, normalize_constant, dim=-1)
    loss = per_seq.mean() / gradient_accumulation_steps
    loss.backward()
    tokens = response_mask.sum()
    return loss.detach(), {
        "nll_per_token": (-policy_log_probs.detach() * response_mask).sum() / tokens.clamp(min=1),
        "num_response_tokens": tokens,
    }


def compute_group_normalized_rewards(
    reward_fn: Callable[[str, str], dict[str, float]],
    rollout_responses: list[str],
    repeated_ground_truths: list[str],
    group_size: int,
    advantage_eps: float,
    normalize_by_std: bool,
) -> tuple[torch.Tensor, torch.Tensor, dict[str, float]]:
    """Score each response, then subtract its group's mean reward (and divide by the
    group's std + eps when ``normalize_by_std``). Consecutive ``group_size`` responses
    form a group. Returns (advantages, raw_rewards, metadata), both (rollout_batch_size,)."""
    n = len(rollout_responses)
    if n != len(repeated_ground_truths):
        raise ValueError(f"{n} responses but {len(repeated_ground_truths)} ground truths")
    if group_size < 1 or n % group_size:
        raise ValueError(f"{n} responses do not split into groups of {group_size}")
    scores = [
        reward_fn(r, g) for r, g in zip(rollout_responses, repeated_ground_truths, strict=True)
    ]
    raw = torch.tensor([float(s["reward"]) for s in scores], dtype=torch.float32)
    groups = raw.view(-1, group_size)
    centred = groups - groups.mean(dim=1, keepdim=True)
    if normalize_by_std:
        centred = centred / (groups.std(dim=1, keepdim=True) + advantage_eps)
    meta = {
        "reward_mean": raw.mean().item(),
        "reward_std": raw.std().item() if n > 1 else 0.0,
        "reward_max": raw.max().item(),
        "reward_min": raw.min().item(),
        "format_reward_mean": _mean_of(scores, "format_reward"),
        "answer_reward_mean": _mean_of(scores, "answer_reward"),
        # groups whose responses all scored the same carry no learning signal
        "frac_groups_all_equal": (groups.max(1).values == groups.min(1).values)
        .float()
        .mean()
        .item(),
    }
    return centred.flatten(), raw, meta


def _mean_of(scores: list[dict], key: str) -> float:
    vals = [float(s[key]) for s in scores if key in s]
    return sum(vals) / len(vals) if vals else float("nan")


def compute_naive_policy_gradient_loss(
    raw_rewards_or_advantages: torch.Tensor, policy_log_probs: torch.Tensor
) -> torch.Tensor:
    """Per-token ``-A * log pi``: (batch, 1) x (batch, seq) -> (batch, seq)."""
    return -raw_rewards_or_advantages * policy_log_probs


def compute_grpo_clip_loss(
    advantages: torch.Tensor,
    policy_log_probs: torch.Tensor,
    old_log_probs: torch.Tensor,
    cliprange: float,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Per-token ``-min(r A, clip(r, 1-eps, 1+eps) A)`` with ``r = pi / pi_old``.
    metadata["clipped"] marks the tokens where the clipped term was the smaller."""
    ratio = torch.exp(policy_log_probs - old_log_probs)
    unclipped = ratio * advantages
    clipped = torch.clamp(ratio, 1.0 - cliprange, 1.0 + cliprange) * advantages
    loss = -torch.minimum(unclipped, clipped)
    return loss, {"clipped": clipped < unclipped, "ratio": ratio.detach()}


def compute_policy_gradient_loss(
    policy_log_probs: torch.Tensor,
    loss_type: LossType,
    raw_rewards: torch.Tensor | None = None,
    advantages: torch.Tensor | None = None,
    old_log_probs: torch.Tensor | None = None,
    cliprange: float | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Dispatch on ``loss_type``: ``no_baseline`` uses ``raw_rewards``,
    ``reinforce_with_baseline`` uses ``advantages``, ``grpo_clip`` uses ``advantages``,
    ``old_log_probs`` and ``cliprange``. Returns the (batch, seq) loss and metadata."""
    if loss_type == "no_baseline":
        _require(loss_type, raw_rewards=raw_rewards)
        return compute_naive_policy_gradient_loss(raw_rewards, policy_log_probs), {}
    if loss_type == "reinforce_with_baseline":
        _require(loss_type, advantages=advantages)
        return compute_naive_policy_gradient_loss(advantages, policy_log_probs), {}
    if loss_type == "grpo_clip":
        _require(loss_type, advantages=advantages, old_log_probs=old_log_probs, cliprange=cliprange)
        return compute_grpo_clip_loss(advantages, policy_log_probs, old_log_probs, cliprange)
    raise ValueError(f"loss_type must be one of {LOSS_TYPES}, got {loss_type!r}")


def _require(loss_type: str, **given) -> None:
    missing = [name for name, value in given.items() if value is None]
    if missing:
        raise ValueError(f"loss_type {loss_type!r} needs {', '.join(missing)}")


def grpo_microbatch_loss(
    policy_log_probs: torch.Tensor,
    response_mask: torch.Tensor,
    loss_type: LossType,
    raw_rewards: torch.Tensor | None = None,
    advantages: torch.Tensor | None = None,
    old_log_probs: torch.Tensor | None = None,
    cliprange: float | None = None,
    length_normalization: float | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The microbatch's policy-gradient loss without backward: per-token loss averaged
    over each response (``masked_mean``; or summed and divided by the constant
    ``length_normalization``, Dr. GRPO), then over the batch."""
    per_token, meta = compute_policy_gradient_loss(
        policy_log_probs, loss_type, raw_rewards, advantages, old_log_probs, cliprange
    )
    if length_normalization is None:
        per_seq = masked_mean(per_token, response_mask, dim=-1)
    else:
        per_seq = masked_normalize(per_token, response_mask, length_normalization, dim=-1)
    if "clipped" in meta:
        meta["clip_fraction"] = masked_mean(meta["clipped"].float(), response_mask)
    return per_seq.mean(), meta


def grpo_microbatch_train_step(
    policy_log_probs: torch.Tensor,
    response_mask: torch.Tensor,
    gradient_accumulation_steps: int,
    loss_type: LossType,
    raw_rewards: torch.Tensor | None = None,
    advantages: torch.Tensor | None = None,
    old_log_probs: torch.Tensor | None = None,
    cliprange: float | None = None,
    length_normalization: float | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """`grpo_microbatch_loss` scaled by ``1 / gradient_accumulation_steps``; calls backward."""
    loss, meta = grpo_microbatch_loss(
        policy_log_probs, response_mask, loss_type, raw_rewards, advantages, old_log_probs,
        cliprange, length_normalization,
    )  # fmt: skip
    loss = loss / gradient_accumulation_steps
    loss.backward()
    return loss.detach(), meta
