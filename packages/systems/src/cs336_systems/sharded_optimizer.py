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
``optimizer_cls`` instance over the pieces of its parameters that fall in the owned
slice (``nn.Parameter`` views of the buffer, gradients views of the parameters'
gradients: nothing is copied; a piece of a parameter without a gradient is skipped, as
the unsharded optimizer skips the parameter).

Step: bucket by bucket, the owned pieces are stepped and the bucket's in-place
all-gather (every rank broadcasting its slice at once) is launched, so bucket k's
communication overlaps bucket k+1's update; a bucket without any gradient is skipped.

`param_groups` are the full groups (schedulers may edit their hyperparameters); `state`
maps each owned piece to its state. `state_dict()` is collective and returns the
unsharded state dict, in the format ``optimizer_cls(all params).state_dict()`` has, so
checkpoints load into either.
"""

from __future__ import annotations

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
class _Piece:
    param: Tensor
    start: int  # the piece is param.reshape(-1)[start:end]
    end: int
    view: nn.Parameter  # the same elements in the bucket's buffer, stepped by the optimizer


@dataclass
class _Bucket:
    group: int  # index into param_groups
    params: list[Tensor]
    flat: Tensor  # the parameters' storage, padded to a multiple of the world size
    shard: Tensor  # this rank's slice of ``flat``
    pieces: list[_Piece]  # the parts of the parameters in ``shard``, in order
    optimizer: Optimizer
    work: dist.Work | None = None


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
        """This rank's state: owned piece (its `_Piece.view`) -> its optimizer state."""
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
        starts = _starts(params)
        n = math.ceil((starts[-1] + params[-1].numel()) / self._world)
        flat = params[0].new_zeros(n * self._world)
        for p, s in zip(params, starts, strict=True):
            flat[s : s + p.numel()].copy_(p.reshape(-1))
            p.data = flat[s : s + p.numel()].view_as(p)
        lo, hi = self._rank * n, (self._rank + 1) * n
        pieces = [
            _Piece(p, a - s, b - s, nn.Parameter(flat[a:b]))
            for p, s in zip(params, starts, strict=True)
            if (a := max(lo, s)) < (b := min(hi, s + p.numel()))
        ]
        hyper = {k: v for k, v in self.param_groups[group].items() if k != "params"}
        views = [piece.view for piece in pieces]
        optimizer = self._optimizer_cls([{**hyper, "params": views}], **self._kwargs)
        return _Bucket(group, params, flat, flat[lo:hi], pieces, optimizer)

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        self._sync_hyperparameters()
        for b in self._buckets:
            if all(p.grad is None for p in b.params):  # the same on every rank
                continue
            for piece in b.pieces:
                g = piece.param.grad
                piece.view.grad = None if g is None else g.reshape(-1)[piece.start : piece.end]
            b.optimizer.step()
            for piece in b.pieces:
                piece.view.grad = None
            b.work = dist.all_gather_into_tensor(b.flat, b.shard, async_op=True)
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
            for p, per_param in _gather_bucket_state(b).items():
                state[index[p]] = per_param
        groups = []
        for i, g in enumerate(self.param_groups):
            local = next((b.optimizer.param_groups[0] for b in self._buckets if b.group == i), g)
            hyper = {k: v for k, v in local.items() if k != "params"}
            groups.append({**hyper, "params": [index[p] for p in g["params"]]})
        return {"state": dict(sorted(state.items())), "param_groups": groups}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load a full state dict (from `state_dict` or an unsharded optimizer): keep the
        hyperparameters and this rank's pieces of the state."""
        groups = state_dict["param_groups"]
        if len(groups) != len(self.param_groups):
            raise ValueError(
                f"state dict has {len(groups)} param groups, optimizer has {len(self.param_groups)}"
            )
        for full, saved in zip(self.param_groups, groups, strict=True):
            full.update({k: v for k, v in saved.items() if k != "params"})
        index = self._full_index()
        for b in self._buckets:
            pieces_state = {}
            for i, piece in enumerate(b.pieces):
                saved = state_dict["state"].get(index[piece.param])
                if saved:
                    pieces_state[i] = {k: _cut(v, piece) for k, v in saved.items()}
            hyper = {k: v for k, v in groups[b.group].items() if k != "params"}
            b.optimizer.load_state_dict(
                {
                    "state": pieces_state,
                    "param_groups": [{**hyper, "params": list(range(len(b.pieces)))}],
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


def _cut(v: Any, piece: _Piece) -> Any:
    """A parameter's saved state value, restricted to the piece (values that are one per
    element; others, such as the step count, are the piece's as they are)."""
    if torch.is_tensor(v) and v.dim() > 0 and v.numel() == piece.param.numel():
        return v.reshape(-1)[piece.start : piece.end]
    return v


def _gather_bucket_state(b: _Bucket) -> dict[Tensor, dict[str, Any]]:
    """Collective over the bucket: each of its parameters' full state (CPU tensors), for
    parameters that have one. Per-element values are all-gathered as the flat layout,
    with a mask of which elements have state; other values (the step count) come from
    the rank owning the parameter's first element."""
    states = [b.optimizer.state.get(piece.view) or {} for piece in b.pieces]
    position = {id(p): i for i, p in enumerate(b.params)}  # the same on every rank
    mask = b.shard.new_zeros(b.shard.numel(), dtype=torch.uint8)
    keys, scalars, offset = {}, {}, 0
    for piece, st in zip(b.pieces, states, strict=True):
        n = piece.end - piece.start
        if st:
            mask[offset : offset + n] = 1
            for k, v in st.items():
                if torch.is_tensor(v) and v.dim() > 0 and v.shape == piece.view.shape:
                    keys[k] = v.dtype
                elif piece.start == 0:
                    scalars.setdefault(position[id(piece.param)], {})[k] = _cpu(v)
        offset += n
    everyone: list[tuple] = [None] * dist.get_world_size()  # type: ignore[list-item]
    dist.all_gather_object(everyone, (keys, scalars))
    keys = {k: d for ks, _ in everyone for k, d in ks.items()}
    scalars = {i: v for _, sc in everyone for i, v in sc.items()}
    full_mask = _all_gather(mask, b.flat.numel())
    full = {}
    for k, dtype in keys.items():
        mine = b.shard.new_zeros(b.shard.numel(), dtype=dtype)
        offset = 0
        for piece, st in zip(b.pieces, states, strict=True):
            n = piece.end - piece.start
            if k in st:
                mine[offset : offset + n] = st[k]
            offset += n
        full[k] = _all_gather(mine, b.flat.numel())
    out = {}
    for i, (p, s) in enumerate(zip(b.params, _starts(b.params), strict=True)):
        if not full_mask[s : s + p.numel()].all():
            continue
        per_element = {k: f[s : s + p.numel()].view_as(p).cpu().clone() for k, f in full.items()}
        out[p] = {**scalars.get(i, {}), **per_element}
    return out


def _all_gather(t: Tensor, numel: int) -> Tensor:
    out = t.new_empty(numel)
    dist.all_gather_into_tensor(out, t)
    return out


def _cpu(v):
    return v.cpu().clone() if torch.is_tensor(v) else v
