"""`ShardedOptimizer`: optimizer-state sharding (ZeRO stage 1).

Every rank holds the whole model and the averaged gradients, but AdamW's two moments
(twice the model's size) are split: each rank keeps the state of 1/world of the
elements and updates only those; the updated values are then shared. Per-rank optimizer
memory drops to about 1/world.

    opt = ShardedOptimizer(model.parameters(), torch.optim.AdamW, lr=1e-3)

Layout: each param group's parameters are packed in order into buckets of about
``bucket_size_mb`` MiB (one dtype and device each). A bucket is one flat buffer, padded
to a multiple of the world size, and its parameters become views of it (``p.data`` is
re-pointed once, at construction: hold parameters, not their ``.data``). Rank r owns the
r-th 1/world slice of every bucket, whatever parameters it cuts through: AdamW is
elementwise, so stepping a slice is stepping those elements. Each bucket has its own
``optimizer_cls`` instance over that slice (an ``nn.Parameter`` sharing the buffer).

Step: bucket by bucket, the owned slice's gradient is taken from the parameters'
gradients (a view when it lies in one parameter, else one concatenation), the slice is
stepped, and the bucket's in-place all-gather (every rank broadcasting its slice at
once) is launched, so bucket k's communication overlaps bucket k+1's update. A bucket
none of whose parameters has a gradient is skipped; in a bucket where only some have
one, the others are stepped with a zero gradient (their weight decay still applies).

`param_groups` are the full groups (schedulers may edit their hyperparameters); `state`
maps each owned slice to its state. `state_dict()` is collective and returns the
unsharded state dict, in the format ``optimizer_cls(all params).state_dict()`` has, so
checkpoints load into either.
"""

from __future__ import annotations

import functools
import itertools
import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.optim import Optimizer

_MIB = 1024 * 1024


@dataclass
class _Bucket:
    group: int  # index into param_groups
    params: list[Tensor]
    flat: Tensor  # the parameters' storage, padded to a multiple of the world size
    shard: nn.Parameter  # this rank's slice of ``flat``
    pieces: list[tuple[Tensor, int, int]]  # (param, start, end) of its flat elements owned
    optimizer: Optimizer
    work: dist.Work | None = None

    def shard_grad(self) -> Tensor | None:
        """The owned slice's gradient (None if no parameter of the bucket has one)."""
        if all(p.grad is None for p in self.params):
            return None
        parts = [
            p.grad.reshape(-1)[a:b] if p.grad is not None else p.new_zeros(b - a)
            for p, a, b in self.pieces
        ]
        pad = self.shard.numel() - sum(b - a for _, a, b in self.pieces)
        if pad:
            parts.append(self.shard.new_zeros(pad))
        return parts[0] if len(parts) == 1 else torch.cat(parts)


class ShardedOptimizer(Optimizer):
    def __init__(
        self,
        params,
        optimizer_cls: type[Optimizer],
        *,
        bucket_size_mb: float = 256.0,
        **kwargs: Any,
    ):
        if not bucket_size_mb > 0:
            raise ValueError(f"bucket_size_mb must be positive, got {bucket_size_mb!r}")
        self._rank, self._world = dist.get_rank(), dist.get_world_size()
        self._optimizer_cls, self._kwargs = optimizer_cls, kwargs
        self._cap = bucket_size_mb * _MIB
        self._buckets: list[_Bucket] = []
        super().__init__(params, kwargs)  # calls add_param_group per group

    @property
    def state(self) -> dict[Tensor, dict[str, Any]]:
        """This rank's state: owned slice -> its optimizer state."""
        return {s: v for b in self._buckets for s, v in b.optimizer.state.items()}

    @state.setter
    def state(self, value) -> None:
        # `Optimizer.__init__` assigns an empty state; the state lives in the buckets
        if value:
            raise AttributeError("ShardedOptimizer.state is read-only; use load_state_dict")

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        super().add_param_group(param_group)
        index = len(self.param_groups) - 1
        group = self.param_groups[index]
        for params in _pack(group["params"], self._cap):
            self._buckets.append(self._new_bucket(index, params))

    @torch.no_grad()
    def _new_bucket(self, group: int, params: list[Tensor]) -> _Bucket:
        sizes = [p.numel() for p in params]
        starts = list(itertools.accumulate(sizes, initial=0))
        n = math.ceil(starts[-1] / self._world)
        flat = params[0].new_zeros(n * self._world)
        for p, s in zip(params, starts, strict=False):
            flat[s : s + p.numel()].copy_(p.reshape(-1))
            p.data = flat[s : s + p.numel()].view_as(p)
        lo, hi = self._rank * n, (self._rank + 1) * n
        pieces = [
            (p, max(lo, s) - s, min(hi, s + p.numel()) - s)
            for p, s in zip(params, starts, strict=False)
            if s < hi and s + p.numel() > lo
        ]
        shard = nn.Parameter(flat[lo:hi])
        hyper = {k: v for k, v in self.param_groups[group].items() if k != "params"}
        optimizer = self._optimizer_cls([{**hyper, "params": [shard]}], **self._kwargs)
        return _Bucket(group, params, flat, shard, pieces, optimizer)

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        self._sync_hyperparameters()
        for b in self._buckets:
            b.shard.grad = b.shard_grad()
            if b.shard.grad is None:  # no gradient anywhere in the bucket, on any rank
                continue
            b.optimizer.step()
            b.shard.grad = None
            b.work = dist.all_gather_into_tensor(b.flat, b.shard.detach(), async_op=True)
        for b in self._buckets:
            if b.work is not None:
                b.work.wait()
                b.work = None
        return loss

    def _sync_hyperparameters(self) -> None:
        """Carry edits of the full groups (an lr schedule) into the buckets' optimizers."""
        for b in self._buckets:
            full = self.param_groups[b.group]
            b.optimizer.param_groups[0].update({k: v for k, v in full.items() if k != "params"})

    def state_dict(self) -> dict[str, Any]:
        """Collective: every rank gets the full (unsharded) state dict, tensors on CPU."""
        self._sync_hyperparameters()
        index = self._full_index()
        state: dict[int, dict[str, Any]] = {}
        for b in self._buckets:
            mine = b.optimizer.state.get(b.shard)
            if not mine:
                continue
            for k, v in mine.items():
                if torch.is_tensor(v) and v.shape == b.shard.shape:  # one value per element
                    full = v.new_empty(b.flat.numel())
                    dist.all_gather_into_tensor(full, v.contiguous())
                    for p, s in zip(b.params, _starts(b.params), strict=False):
                        per_param = full[s : s + p.numel()].view_as(p).cpu().clone()
                        state.setdefault(index[p], {})[k] = per_param
                else:  # shared by the bucket (a step count)
                    for p in b.params:
                        state.setdefault(index[p], {})[k] = _cpu(v)
        groups = []
        for i, g in enumerate(self.param_groups):
            local = next((b.optimizer.param_groups[0] for b in self._buckets if b.group == i), g)
            hyper = {k: v for k, v in local.items() if k != "params"}
            groups.append({**hyper, "params": [index[p] for p in g["params"]]})
        return {"state": dict(sorted(state.items())), "param_groups": groups}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load a full state dict (from `state_dict` or an unsharded optimizer): keep the
        hyperparameters and this rank's slices of the state."""
        groups = state_dict["param_groups"]
        if len(groups) != len(self.param_groups):
            raise ValueError(
                f"state dict has {len(groups)} param groups, optimizer has {len(self.param_groups)}"
            )
        for full, saved in zip(self.param_groups, groups, strict=True):
            full.update({k: v for k, v in saved.items() if k != "params"})
        index = self._full_index()
        for b in self._buckets:
            saved = [state_dict["state"].get(index[p]) for p in b.params]
            hyper = {k: v for k, v in groups[b.group].items() if k != "params"}
            b.optimizer.load_state_dict(
                {
                    "state": _shard_state(b, dict(zip(b.params, saved, strict=True))),
                    "param_groups": [{**hyper, "params": [0]}],
                }
            )

    def _full_index(self) -> dict[Tensor, int]:
        """Parameter -> its index in an unsharded optimizer's state dict."""
        params = [p for g in self.param_groups for p in g["params"]]
        return {p: i for i, p in enumerate(params)}


def _pack(params: list[Tensor], cap_bytes: float) -> list[list[Tensor]]:
    """Consecutive parameters of one dtype and device, up to ``cap_bytes`` a bucket."""
    buckets: list[list[Tensor]] = []
    size = 0
    for p in params:
        nbytes = p.numel() * p.element_size()
        last = buckets[-1][-1] if buckets else None
        if (
            last is None
            or (last.dtype, last.device) != (p.dtype, p.device)
            or size + nbytes > cap_bytes
        ):
            buckets.append([])
            size = 0
        buckets[-1].append(p)
        size += nbytes
    return buckets


def _starts(params: list[Tensor]) -> list[int]:
    return list(itertools.accumulate((p.numel() for p in params), initial=0))[:-1]


def _cpu(v):
    return v.cpu().clone() if torch.is_tensor(v) else v


def _shard_state(b: _Bucket, saved: dict[Tensor, dict | None]) -> dict[int, dict]:
    """The owned slice's state, cut from per-parameter states (zeros where a parameter
    has none; shared values such as the step count from the first that has one)."""
    present = [s for s in saved.values() if s]
    if not present:
        return {}
    out = {}
    for k, v in present[0].items():
        per_element = torch.is_tensor(v) and v.dim() > 0
        if not per_element:
            out[k] = v
            continue
        zeros = functools.partial(torch.zeros, dtype=v.dtype, device=b.shard.device)
        parts = [
            saved[p][k].reshape(-1)[a:c].to(b.shard.device) if saved[p] else zeros(c - a)
            for p, a, c in b.pieces
        ]
        pad = b.shard.numel() - sum(c - a for _, a, c in b.pieces)
        out[k] = torch.cat([*parts, zeros(pad)])
    return {0: out}
