"""AdamW (Loshchilov & Hutter 2019, Algorithm 2) as a `torch.optim.Optimizer`.

Per step t, for each parameter θ with gradient g:
    θ ← θ - lr·λ·θ                          (decoupled weight decay, on θ_{t-1})
    m ← β1·m + (1-β1)·g
    v ← β2·v + (1-β2)·g²
    θ ← θ - lr_t · m / (√v + ε̂),   lr_t = lr·√(1-β2^t) / (1-β1^t),   ε̂ = ε·√(1-β2^t)
The bias corrections of m and v are folded into the step size ``lr_t`` (Kingma & Ba 2015,
end of Sec. 2). Rescaling ε to ε̂ there makes this exactly ``m̂ / (√v̂ + ε)`` with the
bias-corrected moments m̂, v̂, so ε means what it means in ``torch.optim.AdamW``; the
course handout adds the unscaled ε to √v, which differs only at the scale of ε.

The update runs as multi-tensor ``torch._foreach_*`` kernels over all parameters that
share a device, dtype and step count, so a GPU step is a handful of launches instead of
several per parameter tensor. ``compile=True`` fuses it further with ``torch.compile``;
then the scalars that change every step (lr from a schedule, t) enter as 0-dim tensors,
so one compiled graph serves every step instead of a recompile per value.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Iterable

import torch


class AdamW(torch.optim.Optimizer):
    def __init__(
        self,
        params: Iterable,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.01,
        *,
        compile: bool = False,
    ):
        if not lr >= 0:
            raise ValueError(f"AdamW lr must be >= 0, got {lr}")
        if not all(0 <= b < 1 for b in betas) or len(betas) != 2:
            raise ValueError(f"AdamW betas must be two numbers in [0, 1), got {betas}")
        if not eps >= 0:
            raise ValueError(f"AdamW eps must be >= 0, got {eps}")
        if not weight_decay >= 0:
            raise ValueError(f"AdamW weight_decay must be >= 0, got {weight_decay}")
        defaults = dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay)
        super().__init__(params, defaults)
        self._compiled = compile
        self._update = torch.compile(_update, dynamic=True, fullgraph=True) if compile else _update

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for (device, _, t), tensors in self._step_buckets(group).items():
                self._update(*tensors, *self._scalars(group, t, device), *group["betas"])
        return loss

    def _step_buckets(self, group) -> dict[tuple, tuple[list, list, list, list]]:
        """Advance each parameter's step count; bucket (θ, g, m, v) by device, dtype, step.
        Step counts differ only for parameters that sometimes had no gradient."""
        buckets = defaultdict(lambda: ([], [], [], []))
        for p in group["params"]:
            if p.grad is None:
                continue
            if p.grad.is_sparse:
                raise RuntimeError("AdamW does not support sparse gradients")
            state = self.state[p]
            if not state:
                state["step"] = 0
                state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            state["step"] += 1
            bucket = buckets[(p.device, p.dtype, state["step"])]
            for lst, x in zip(
                bucket, (p, p.grad, state["exp_avg"], state["exp_avg_sq"]), strict=True
            ):
                lst.append(x)
        return buckets

    def _scalars(self, group, t: int, device) -> tuple:
        """(1 - lr·λ, lr_t, ε̂) of step t: floats, or 0-dim tensors for the compiled update."""
        lr, (beta1, beta2) = group["lr"], group["betas"]
        bias2 = math.sqrt(1 - beta2**t)
        scalars = (
            1 - lr * group["weight_decay"],
            lr * bias2 / (1 - beta1**t),
            group["eps"] * bias2,
        )
        if self._compiled:  # torch.full launches a fill kernel: no host-device copy or sync
            return tuple(torch.full((), s, device=device) for s in scalars)
        return scalars


def _update(params, grads, exp_avgs, exp_avg_sqs, decay, lr_t, eps_hat, beta1, beta2) -> None:
    """One AdamW step over lists of tensors; ``decay``, ``lr_t``, ``eps_hat`` are floats
    or 0-dim tensors (hence lr_t·m rather than ``value=-lr_t``, which takes only floats)."""
    torch._foreach_mul_(params, decay)  # θ·(1 - lr·λ)
    torch._foreach_lerp_(exp_avgs, grads, 1 - beta1)  # β1·m + (1-β1)·g
    torch._foreach_mul_(exp_avg_sqs, beta2)
    torch._foreach_addcmul_(exp_avg_sqs, grads, grads, value=1 - beta2)
    denom = torch._foreach_sqrt(exp_avg_sqs)
    # a list, not one scalar: Inductor lowers `_foreach_add_(xs, 0-dim tensor)` with
    # `.item()`, a device-to-host copy that made every compiled GPU step wait for the
    # backward pass before it could queue the update
    torch._foreach_add_(denom, [eps_hat] * len(denom))
    step = torch._foreach_mul(exp_avgs, lr_t)
    torch._foreach_addcdiv_(params, step, denom, value=-1)  # θ - lr_t·m / (√v + ε̂)
