"""The losses against float64 reference formulas written element by element."""

import numpy as np
import pytest
import torch

from cs336_alignment import (
    compute_group_normalized_rewards,
    compute_grpo_clip_loss,
    compute_naive_policy_gradient_loss,
    compute_policy_gradient_loss,
    grpo_microbatch_train_step,
    masked_mean,
    masked_normalize,
    sft_microbatch_train_step,
)


def _inputs(seed=0, b=4, s=7):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(b, s, generator=g, dtype=torch.float64)
    mask = torch.rand(b, s, generator=g) > 0.4
    mask[:, 0] = True  # every row has a response token
    return x, mask


def _ref_masked(x, mask, dim, mean):
    x, m = x.numpy(), mask.numpy()
    if dim is None:
        vals = [x[i, j] for i in range(x.shape[0]) for j in range(x.shape[1]) if m[i, j]]
        return sum(vals) / (len(vals) if mean else 1)
    out = []
    x_t, m_t = (x, m) if dim in (1, -1) else (x.T, m.T)
    for row, mrow in zip(x_t, m_t, strict=True):
        vals = [v for v, k in zip(row, mrow, strict=True) if k]
        out.append(sum(vals) / (len(vals) if mean else 1))
    return np.array(out)


@pytest.mark.parametrize("dim", [None, 0, 1, -1])
def test_masked_mean_and_normalize(dim):
    x, mask = _inputs()
    torch.testing.assert_close(
        masked_mean(x, mask, dim), torch.as_tensor(_ref_masked(x, mask, dim, True))
    )
    torch.testing.assert_close(
        masked_normalize(x, mask, 3.0, dim),
        torch.as_tensor(_ref_masked(x, mask, dim, False)) / 3.0,
    )


def test_masked_ops_ignore_non_finite_values_outside_the_mask():
    x, mask = _inputs()
    x = x.masked_fill(~mask, float("-inf"))
    assert torch.isfinite(masked_mean(x, mask, -1)).all()
    assert torch.isfinite(masked_normalize(x, mask, 2.0)).all()


def test_sft_microbatch_train_step_loss_and_gradient():
    x, mask = _inputs(1)
    lp = x.clone().requires_grad_(True)
    loss, meta = sft_microbatch_train_step(
        lp, mask, gradient_accumulation_steps=2, normalize_constant=5.0
    )
    b = x.shape[0]
    want = -sum(_ref_masked(x[i : i + 1], mask[i : i + 1], None, False) for i in range(b))
    want = want / 5.0 / b / 2
    assert loss.item() == pytest.approx(want, rel=1e-12)
    # d loss / d lp = -mask / (5 * b * 2)
    torch.testing.assert_close(lp.grad, -mask.double() / (5.0 * b * 2))
    assert meta["num_response_tokens"].item() == mask.sum().item()


def _ref_group_normalize(rewards, group_size, eps, by_std):
    out = []
    for g in range(0, len(rewards), group_size):
        grp = np.array(rewards[g : g + group_size], dtype=np.float64)
        adv = grp - grp.mean()
        if by_std:
            adv = adv / (grp.std(ddof=1) + eps)
        out.extend(adv)
    return np.array(out)


@pytest.mark.parametrize("by_std", [True, False])
def test_compute_group_normalized_rewards(by_std):
    rng = np.random.default_rng(3)
    truths = [str(t) for t in rng.integers(0, 3, 12)]
    responses = [str(r) for r in rng.integers(0, 3, 12)]
    reward_fn = lambda r, t: {"reward": float(r == t) + 0.5 * int(r), "format_reward": 1.0}  # noqa: E731
    adv, raw, meta = compute_group_normalized_rewards(reward_fn, responses, truths, 4, 1e-6, by_std)
    want_raw = [float(r == t) + 0.5 * int(r) for r, t in zip(responses, truths, strict=True)]
    np.testing.assert_allclose(raw.numpy(), want_raw)
    np.testing.assert_allclose(
        adv.numpy(), _ref_group_normalize(want_raw, 4, 1e-6, by_std), rtol=1e-5, atol=1e-6
    )
    assert meta["reward_mean"] == pytest.approx(np.mean(want_raw))
    assert meta["format_reward_mean"] == 1.0


def test_group_rewards_refuse_ragged_groups():
    with pytest.raises(ValueError, match="groups of 4"):
        compute_group_normalized_rewards(
            lambda r, t: {"reward": 0}, ["a"] * 6, ["a"] * 6, 4, 1e-6, True
        )


def test_naive_policy_gradient_loss():
    x, _ = _inputs(2)
    r = torch.randn(x.shape[0], 1, dtype=torch.float64)
    got = compute_naive_policy_gradient_loss(r, x)
    for i in range(x.shape[0]):
        for j in range(x.shape[1]):
            assert got[i, j].item() == pytest.approx(-r[i, 0].item() * x[i, j].item())


def test_grpo_clip_loss_elementwise():
    x, _ = _inputs(3)
    old = x + 0.3 * torch.randn_like(x)
    adv = torch.randn(x.shape[0], 1, dtype=torch.float64)
    eps = 0.2
    loss, meta = compute_grpo_clip_loss(adv, x, old, eps)
    for i in range(x.shape[0]):
        for j in range(x.shape[1]):
            ratio = np.exp(x[i, j].item() - old[i, j].item())
            a = adv[i, 0].item()
            want = -min(ratio * a, min(max(ratio, 1 - eps), 1 + eps) * a)
            assert loss[i, j].item() == pytest.approx(want, rel=1e-10)
            assert bool(meta["clipped"][i, j]) == (
                min(max(ratio, 1 - eps), 1 + eps) * a < ratio * a
            )


def test_policy_gradient_dispatch():
    x, _ = _inputs(4)
    r = torch.randn(x.shape[0], 1, dtype=torch.float64)
    old = x.detach() + 0.1
    a, _ = compute_policy_gradient_loss(x, "no_baseline", raw_rewards=r)
    torch.testing.assert_close(a, -r * x)
    b, _ = compute_policy_gradient_loss(x, "reinforce_with_baseline", advantages=r)
    torch.testing.assert_close(b, -r * x)
    c, _ = compute_policy_gradient_loss(
        x, "grpo_clip", advantages=r, old_log_probs=old, cliprange=0.2
    )
    torch.testing.assert_close(c, compute_grpo_clip_loss(r, x, old, 0.2)[0])
    with pytest.raises(ValueError, match="needs old_log_probs, cliprange"):
        compute_policy_gradient_loss(x, "grpo_clip", advantages=r)
    with pytest.raises(ValueError, match="loss_type must be one of"):
        compute_policy_gradient_loss(x, "ppo", raw_rewards=r)


@pytest.mark.parametrize("length_normalization", [None, 16.0])
def test_grpo_microbatch_train_step_matches_reference(length_normalization):
    x, mask = _inputs(5)
    adv = torch.randn(x.shape[0], 1, dtype=torch.float64)
    old = x + 0.2 * torch.randn_like(x)
    lp = x.clone().requires_grad_(True)
    loss, meta = grpo_microbatch_train_step(
        lp,
        mask,
        4,
        "grpo_clip",
        advantages=adv,
        old_log_probs=old,
        cliprange=0.2,
        length_normalization=length_normalization,
    )
    # reference through plain autograd on the per-element formula
    ref_lp = x.clone().requires_grad_(True)
    ratio = torch.exp(ref_lp - old)
    per_tok = -torch.minimum(ratio * adv, ratio.clamp(0.8, 1.2) * adv)
    rows = []
    for i in range(x.shape[0]):
        sel = per_tok[i][mask[i]]
        rows.append(
            sel.sum() / (len(sel) if length_normalization is None else length_normalization)
        )
    ref = torch.stack(rows).mean() / 4
    ref.backward()
    assert loss.item() == pytest.approx(ref.item(), rel=1e-10)
    torch.testing.assert_close(lp.grad, ref_lp.grad)
    assert 0.0 <= meta["clip_fraction"].item() <= 1.0
