"""`FullyShardedDataParallel`: parameters, gradients and optimizer state all sharded.

The model is cut into units: the root's children, with `nn.ModuleList`/`nn.Sequential`/
`nn.ModuleDict` opened up (so each Transformer block is a unit), plus the root's own
parameters. A unit's trainable parameters are concatenated into one flat vector, padded
to a multiple of the world size, and each rank keeps only its 1/world slice as an
``nn.Parameter``; the optimizer sees only those slices.

    model = FullyShardedDataParallel(model)            # broadcasts rank 0's weights
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    loss_fn(model(x_shard), y_shard).backward()        # grads land on the shards
    opt.step()

Forward: before a unit runs, its flat vector is all-gathered and its modules' weights
become views of it; afterwards the full vector is freed. Tensors autograd saves for
backward that are such views are stored as (offsets, strides) instead, so backward
all-gathers the unit again on first use. The gather is itself an autograd op whose
backward reduce-scatters the full gradient: each rank receives the rank-mean gradient
of its slice, which with equal per-rank batches equals single-process full-batch
training (the optimizer is elementwise, and padding stays zero).

Units sharing a parameter (tied embeddings) are merged into one unit that is gathered
once per module call. Frozen parameters and buffers stay replicated. Every rank must
run the same units in the same order (the collectives are matched by order).
"""

from __future__ import annotations

import itertools
import math

import torch
import torch.distributed as dist
from torch import Tensor, nn

from cs336_systems.ddp import broadcast_module

_CONTAINERS = (nn.ModuleList, nn.Sequential, nn.ModuleDict)


class FullyShardedDataParallel(nn.Module):
    def __init__(self, module: nn.Module):
        super().__init__()
        self.module = module
        broadcast_module(module)
        self._keys = list(module.state_dict())
        names = {m: name for name, m in module.named_modules()}
        self._units = [_Unit(mods, names) for mods in _merge_tied(_unit_parts(module))]
        self.flat_shards = nn.ParameterList(u.shard for u in self._units)

    def forward(self, *args, **kwargs):
        return self.module(*args, **kwargs)

    @torch.no_grad()
    def full_state_dict(self) -> dict[str, Tensor]:
        """Collective: the unsharded ``module.state_dict()`` (same keys), on every rank."""
        merged = dict(self.module.state_dict())
        for unit in self._units:
            full = unit.gather()
            for key, (start, shape) in unit.keys.items():
                merged[key] = full[start : start + math.prod(shape)].view(shape).clone()
        return {k: merged[k] for k in self._keys}


class _Unit:
    """One flat-sharded group of parameters, and the hooks that gather it per call."""

    def __init__(self, parts: list[tuple[nn.Module, bool]], names: dict[nn.Module, str]):
        self.rank, self.world = dist.get_rank(), dist.get_world_size()
        self.slots = _trainable_slots(parts)  # (module, attribute); a tied parameter twice
        params = list({id(m._parameters[a]): m._parameters[a] for m, a in self.slots}.values())
        if len({p.dtype for p in params}) > 1:
            raise ValueError(
                f"FullyShardedDataParallel: a unit ({type(parts[0][0]).__name__}) mixes dtypes "
                f"{sorted({str(p.dtype) for p in params})}; cast the model to one dtype first"
            )
        sizes = [p.numel() for p in params]
        starts = {id(p): s for p, s in zip(params, [0, *itertools.accumulate(sizes)], strict=False)}
        self.layout = [  # per slot: start in the flat vector and shape
            (starts[id(m._parameters[a])], m._parameters[a].shape) for m, a in self.slots
        ]
        self.keys = {
            f"{names[m]}.{a}".lstrip("."): loc
            for (m, a), loc in zip(self.slots, self.layout, strict=True)
        }
        self.numel = math.ceil(sum(sizes) / self.world) * self.world
        flat = torch.zeros(self.numel, dtype=params[0].dtype, device=params[0].device)
        torch.cat([p.detach().reshape(-1) for p in params], out=flat[: sum(sizes)])
        n = self.numel // self.world
        self.shard = nn.Parameter(flat[self.rank * n : (self.rank + 1) * n].clone())
        for m, a in self.slots:
            del m._parameters[a]
        for mod, _ in parts:
            mod.register_forward_pre_hook(self._before_forward)
            mod.register_forward_hook(self._after_forward)
        self._active: list[tuple[_Gathered, torch.autograd.graph.saved_tensors_hooks]] = []

    def gather(self) -> Tensor:
        """All-gather the flat vector (no autograd)."""
        full = torch.empty(self.numel, dtype=self.shard.dtype, device=self.shard.device)
        dist.all_gather_into_tensor(full, self.shard.detach())
        return full

    def _before_forward(self, module, args) -> None:
        gathered = _Gathered(self)
        self._bind(_GatherParams.apply(self.shard, gathered))
        hooks = torch.autograd.graph.saved_tensors_hooks(gathered.pack, _unpack)
        hooks.__enter__()
        self._active.append((gathered, hooks))

    def _after_forward(self, module, args, output) -> None:
        gathered, hooks = self._active.pop()
        hooks.__exit__(None, None, None)
        gathered.free()
        if self._active:  # a module of this unit called from within another of its calls
            self._bind(self._active[-1][0].full)
        else:
            for m, a in self.slots:
                delattr(m, a)  # no stale views of the freed buffer

    def _bind(self, full: Tensor) -> None:
        """Point every parameter attribute of the unit at its slice of ``full``."""
        for (m, a), (start, shape) in zip(self.slots, self.layout, strict=True):
            setattr(m, a, full[start : start + math.prod(shape)].view(shape))


class _Gathered:
    """The full flat vector of one unit call: gathered for forward, freed after it,
    gathered again when backward first needs it, freed once its gradient is out."""

    def __init__(self, unit: _Unit):
        self.unit = unit
        self.full: Tensor | None = None

    def materialize(self) -> Tensor:
        storage = self.full.untyped_storage()
        if storage.nbytes() == 0:
            storage.resize_(self.unit.numel * self.full.element_size())
            dist.all_gather_into_tensor(self.full.detach(), self.unit.shard.detach())
        return self.full.detach()

    def free(self) -> None:
        self.full.untyped_storage().resize_(0)

    def pack(self, t: Tensor):
        if t.untyped_storage().data_ptr() == self.full.untyped_storage().data_ptr():
            return (self, t.size(), t.stride(), t.storage_offset())
        return t


def _unpack(packed):
    if isinstance(packed, tuple):
        gathered, size, stride, offset = packed
        return gathered.materialize().as_strided(size, stride, offset)
    return packed


class _GatherParams(torch.autograd.Function):
    """shard -> full flat vector; backward: reduce-scatter of the mean gradient."""

    @staticmethod
    def forward(ctx, shard: Tensor, gathered: _Gathered) -> Tensor:
        ctx.gathered = gathered
        gathered.full = gathered.unit.gather()
        return gathered.full

    @staticmethod
    def backward(ctx, grad_full: Tensor):
        ctx.gathered.free()
        unit = ctx.gathered.unit
        grad = torch.empty_like(unit.shard)
        dist.reduce_scatter_tensor(grad, grad_full.contiguous().div(unit.world))
        return grad, None


def _trainable_slots(parts: list[tuple[nn.Module, bool]]) -> list[tuple[nn.Module, str]]:
    return [
        (m, attr)
        for mod, recurse in parts
        for m in (mod.modules() if recurse else [mod])
        for attr, p in m._parameters.items()
        if p is not None and p.requires_grad
    ]


def _unit_parts(root: nn.Module) -> list[tuple[nn.Module, bool]]:
    """(module, recurse) per unit: the root's own parameters, then each child's subtree
    with containers opened up."""

    def expand(m: nn.Module) -> list[nn.Module]:
        if isinstance(m, _CONTAINERS):
            return [u for c in m.children() for u in expand(c)]
        return [m]

    return [(root, False)] + [(u, True) for c in root.children() for u in expand(c)]


def _merge_tied(parts: list[tuple[nn.Module, bool]]) -> list[list[tuple[nn.Module, bool]]]:
    """Group units that share a trainable parameter; drop units without any."""
    groups: list[list[tuple[nn.Module, bool]]] = []
    group_params: list[set[int]] = []
    for part in parts:
        ids = {id(m._parameters[a]) for m, a in _trainable_slots([part])}
        if not ids:
            continue
        overlapping = [i for i, g in enumerate(group_params) if g & ids]
        merged = [part]
        for i in reversed(overlapping):
            merged = groups.pop(i) + merged
            ids |= group_params.pop(i)
        groups.append(merged)
        group_params.append(ids)
    return groups
