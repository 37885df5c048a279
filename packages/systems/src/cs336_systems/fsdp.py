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
backward reduce-scatters the unit's gradients: each rank receives the rank-mean gradient
of its slice, which with equal per-rank batches equals single-process full-batch
training (the optimizer is elementwise, and padding stays zero).

Communication overlaps compute, as in PyTorch's FSDP: while a unit runs forward, the
all-gather of the unit that ran next in the previous forward is already in flight; in
backward, a unit's first re-gather starts the one of the unit that ran before it; the
reduce-scatters run while backward goes on and are waited for once, when backward ends.
At most two units are gathered at a time.

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
        self._schedule = _Schedule()
        self._units = [
            _Unit(mods, names, self._schedule) for mods in _merge_tied(_unit_parts(module))
        ]
        self._schedule.order = list(self._units)  # a guess until a forward has run
        self.flat_shards = nn.ParameterList(u.shard for u in self._units)

    def forward(self, *args, **kwargs):
        self._schedule.start_forward()
        try:
            return self.module(*args, **kwargs)
        finally:
            self._schedule.end_forward()

    @torch.no_grad()
    def full_state_dict(self) -> dict[str, Tensor]:
        """Collective: the unsharded ``module.state_dict()`` (same keys), on every rank."""
        merged = dict(self.module.state_dict())
        for unit in self._units:
            full = unit.gather()
            for key, (start, shape) in unit.keys.items():
                merged[key] = full[start : start + math.prod(shape)].view(shape).clone()
        return {k: merged[k] for k in self._keys}


class _Schedule:
    """What the units share: this forward's unit calls (for prefetching, in forward and
    backward), the calls whose modules are running (for packing saved tensors), and the
    reduce-scatters still in flight."""

    def __init__(self):
        self.order: list[_Unit] = []  # units in the order the last forward called them
        self.calls: list[_Gathered] = []  # this (or the last) forward's unit calls
        self.recording = False  # inside `FullyShardedDataParallel.forward`
        self.active: list[_Gathered] = []
        self.pending: list[tuple[_Unit, Tensor, dist.Work]] = []
        self.avg = dist.ReduceOp.AVG if dist.get_backend() == "nccl" else None

    def start_forward(self) -> None:
        self.calls, self.recording = [], True

    def end_forward(self) -> None:
        for unit in self.order:  # prefetched for a call that did not come
            if unit.prefetched is not None:
                unit.prefetched.free()
                unit.prefetched = None
        self.order = [g.unit for g in self.calls]
        self.recording = False

    def called(self, gathered: _Gathered) -> None:
        """Record a unit call in forward and start gathering the unit expected next."""
        if not self.recording:
            return
        if self.calls:
            gathered.previous = self.calls[-1]
        self.calls.append(gathered)
        if len(self.calls) < len(self.order):
            nxt = self.order[len(self.calls)]
            if nxt.prefetched is None:
                nxt.prefetched = _Gathered(nxt)
                nxt.prefetched.start()

    def pack(self, t: Tensor):
        ptr = t.untyped_storage().data_ptr()
        for g in reversed(self.active):
            if ptr == g.full.untyped_storage().data_ptr():
                return (g, t.size(), t.stride(), t.storage_offset())
        return t

    def reduce_scatter(self, unit: _Unit, flat_grad: Tensor) -> None:
        """Start the mean gradient's reduce-scatter; the first one of a backward queues
        `finish_backward` to run when the backward pass ends."""
        grad = torch.empty_like(unit.shard)
        if self.avg is None:
            flat_grad.div_(unit.world)
        op = self.avg if self.avg is not None else dist.ReduceOp.SUM
        work = dist.reduce_scatter_tensor(grad, flat_grad, op=op, async_op=True)
        if not self.pending:
            torch.autograd.Variable._execution_engine.queue_callback(self.finish_backward)
        self.pending.append((unit, grad, work))

    def finish_backward(self) -> None:
        for unit, grad, work in self.pending:
            work.wait()
            if unit.shard.grad is None:
                unit.shard.grad = grad
            else:
                unit.shard.grad += grad
        self.pending.clear()


class _Unit:
    """One flat-sharded group of parameters, and the hooks that gather it per call."""

    def __init__(
        self,
        parts: list[tuple[nn.Module, bool]],
        names: dict[nn.Module, str],
        schedule: _Schedule,
    ):
        self.rank, self.world = dist.get_rank(), dist.get_world_size()
        self.schedule = schedule
        self.slots = _trainable_slots(parts)  # (module, attribute); a tied parameter twice
        params = list({id(m._parameters[a]): m._parameters[a] for m, a in self.slots}.values())
        if len({p.dtype for p in params}) > 1:
            raise ValueError(
                f"FullyShardedDataParallel: a unit ({type(parts[0][0]).__name__}) mixes dtypes "
                f"{sorted({str(p.dtype) for p in params})}; cast the model to one dtype first"
            )
        self.sizes = [p.numel() for p in params]
        self.shapes = [p.shape for p in params]
        starts = list(itertools.accumulate(self.sizes, initial=0))
        self.starts = starts[:-1]
        position = {id(p): i for i, p in enumerate(params)}
        self.slot_param = [position[id(m._parameters[a])] for m, a in self.slots]
        self.keys = {
            f"{names[m]}.{a}".lstrip("."): (self.starts[i], self.shapes[i])
            for (m, a), i in zip(self.slots, self.slot_param, strict=True)
        }
        self.numel = math.ceil(starts[-1] / self.world) * self.world
        flat = torch.zeros(self.numel, dtype=params[0].dtype, device=params[0].device)
        torch.cat([p.detach().reshape(-1) for p in params], out=flat[: starts[-1]])
        n = self.numel // self.world
        self.shard = nn.Parameter(flat[self.rank * n : (self.rank + 1) * n].clone())
        for m, a in self.slots:
            del m._parameters[a]
        for mod, _ in parts:
            mod.register_forward_pre_hook(self._before_forward)
            mod.register_forward_hook(self._after_forward)
        self.prefetched: _Gathered | None = None
        self._hooks: list[torch.autograd.graph.saved_tensors_hooks] = []

    def gather(self) -> Tensor:
        """All-gather the flat vector (no autograd)."""
        full = torch.empty(self.numel, dtype=self.shard.dtype, device=self.shard.device)
        dist.all_gather_into_tensor(full, self.shard.detach())
        return full

    def views(self, full: Tensor) -> tuple[Tensor, ...]:
        """Each parameter's view of the flat vector ``full``."""
        return tuple(
            full[s : s + n].view(shape)
            for s, n, shape in zip(self.starts, self.sizes, self.shapes, strict=True)
        )

    def _before_forward(self, module, args) -> None:
        gathered, self.prefetched = self.prefetched or _Gathered(self), None
        gathered.materialize()
        self.schedule.called(gathered)
        self._bind(_GatherParams.apply(self.shard, gathered))
        self.schedule.active.append(gathered)
        hooks = torch.autograd.graph.saved_tensors_hooks(self.schedule.pack, _unpack)
        hooks.__enter__()
        self._hooks.append(hooks)

    def _after_forward(self, module, args, output) -> None:
        self._hooks.pop().__exit__(None, None, None)
        gathered = self.schedule.active.pop()
        gathered.free()
        outer = [g for g in self.schedule.active if g.unit is self]
        if outer:  # a module of this unit called from within another of its calls
            self._bind(self.views(outer[-1].full))
        else:
            for m, a in self.slots:
                delattr(m, a)  # no stale views of the freed buffer

    def _bind(self, views: tuple[Tensor, ...]) -> None:
        """Point every parameter attribute of the unit at its view."""
        for (m, a), i in zip(self.slots, self.slot_param, strict=True):
            setattr(m, a, views[i])


class _Gathered:
    """The full flat vector of one unit call: gathered for forward (maybe ahead of
    time), freed after it, gathered again in backward when first needed (or ahead of
    that), freed once its gradient is out."""

    def __init__(self, unit: _Unit):
        self.unit = unit
        shard = unit.shard
        self.full = torch.empty(0, dtype=shard.dtype, device=shard.device)
        self.work: dist.Work | None = None
        self.previous: _Gathered | None = None  # the call before this one in forward
        self.done = False  # its gradient is out: never needed again

    def start(self) -> None:
        """Launch the all-gather into ``full`` unless it holds the weights, is coming,
        or is no longer needed."""
        storage = self.full.untyped_storage()
        if self.work is None and storage.nbytes() == 0 and not self.done:
            if self.full.numel() == 0:
                self.full = self.unit.shard.new_empty(self.unit.numel)
            else:
                storage.resize_(self.unit.numel * self.full.element_size())
            self.work = dist.all_gather_into_tensor(
                self.full, self.unit.shard.detach(), async_op=True
            )

    def materialize(self) -> Tensor:
        self.start()
        if self.work is not None:
            self.work.wait()
            self.work = None
        return self.full

    def free(self) -> None:
        if self.work is not None:  # prefetched, never used: let the gather land first
            self.work.wait()
            self.work = None
        self.full.untyped_storage().resize_(0)


def _unpack(packed):
    if not isinstance(packed, tuple):
        return packed
    gathered, size, stride, offset = packed
    full = gathered.materialize()
    if gathered.previous is not None:  # backward reaches it next
        gathered.previous.start()
    return full.as_strided(size, stride, offset)


class _GatherParams(torch.autograd.Function):
    """shard -> each parameter's view of the gathered flat vector; backward:
    reduce-scatter of the unit's gradients (the shard's gradient arrives at the end of
    backward, see `_Schedule.finish_backward`)."""

    @staticmethod
    def forward(ctx, shard: Tensor, gathered: _Gathered) -> tuple[Tensor, ...]:
        ctx.set_materialize_grads(False)
        ctx.gathered = gathered
        return gathered.unit.views(gathered.full)

    @staticmethod
    def backward(ctx, *grads: Tensor | None):
        gathered = ctx.gathered
        gathered.free()
        gathered.done = True
        unit = gathered.unit
        flat = torch.empty(unit.numel, dtype=unit.shard.dtype, device=unit.shard.device)
        used = sum(unit.sizes)
        flat[used:].zero_()
        torch.cat(
            [
                g.reshape(-1) if g is not None else flat.new_zeros(n)
                for g, n in zip(grads, unit.sizes, strict=True)
            ],
            out=flat[:used],
        )
        unit.schedule.reduce_scatter(unit, flat)
        return None, None


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
