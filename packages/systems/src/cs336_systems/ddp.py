"""Data parallelism without a wrapper: start every rank from rank 0's weights, and after
``loss.backward()`` average the gradients across ranks.

Two baselines for the benchmark: `all_reduce_gradients` issues one all-reduce per
parameter (many small messages, each paying the collective's latency) and
`all_reduce_gradients_flat` one all-reduce over all gradients concatenated (one
latency, an extra copy in and out). Neither overlaps communication with backward; the
wrappers in `ddp_individual` and `ddp_bucketed` do, on top of `_OverlappedDDP`.
"""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import Callable, Iterable, Iterator

import torch
import torch.distributed as dist
from torch import Tensor, nn


def broadcast_module(module: nn.Module, src: int = 0, group: dist.ProcessGroup | None = None):
    """Copy rank ``src``'s (a global rank) parameters and buffers into every rank's
    ``module`` (in place), over ``group`` (default: the whole world)."""
    for t in [*module.parameters(), *module.buffers()]:
        dist.broadcast(t.data, src=src, group=group)


def on_grad_ready(params: Iterable[Tensor], callback: Callable[[Tensor], None]) -> None:
    """Call the bound method ``callback(p)`` once each ``p.grad`` is accumulated.

    The hooks hold ``callback`` weakly: a strong reference would close a
    param -> hook -> wrapper -> module -> param cycle that runs through C++, which the
    garbage collector cannot see, and leak the whole model with its wrapper.
    """
    method = weakref.WeakMethod(callback)

    def hook(p: Tensor) -> None:
        if (fn := method()) is not None:
            fn(p)

    for p in params:
        p.register_post_accumulate_grad_hook(hook)


class _OverlappedDDP(nn.Module):
    """Shared skeleton of the overlapped wrappers: hold ``module``, start every rank from
    rank 0's weights, and call `_grad_ready(p)` as each trainable gradient is accumulated
    (inside `no_sync` too, where ``self._sync`` is False; the hooks hold the wrapper
    weakly). Subclasses implement `_grad_ready` and ``finish_gradient_synchronization``,
    and build their own state after ``super().__init__`` (no hook can fire before a
    backward). ``group``: the process group to average over (default: the whole world);
    its first rank's weights win."""

    def __init__(self, module: nn.Module, group: dist.ProcessGroup | None = None):
        super().__init__()
        self.module = module
        self._group = group
        self._world = dist.get_world_size(group)
        self._root = 0 if group is None else dist.get_global_rank(group, 0)
        self._sync = True
        broadcast_module(module, self._root, group)
        # the hook calls `_grad_ready` directly: one Python frame fewer per gradient
        on_grad_ready(self._trainable(), self._grad_ready)

    def _trainable(self) -> list[nn.Parameter]:
        return [p for p in self.module.parameters() if p.requires_grad]

    def _grad_ready(self, p: Tensor) -> None:
        raise NotImplementedError

    def forward(self, *args, **kwargs):
        return self.module(*args, **kwargs)

    @contextlib.contextmanager
    def no_sync(self) -> Iterator[None]:
        """Accumulate gradients locally (gradient accumulation); the first backward
        after the block syncs the accumulated sum."""
        self._sync = False
        try:
            yield
        finally:
            self._sync = True


def grads_to_sync(module: nn.Module) -> list[Tensor]:
    """Gradients of the trainable parameters that received one (tied weights once)."""
    return [p.grad for p in module.parameters() if p.requires_grad and p.grad is not None]


def all_reduce_gradients(module: nn.Module) -> None:
    """Average every gradient across ranks, one blocking all-reduce per parameter."""
    world = dist.get_world_size()
    for g in grads_to_sync(module):
        g.div_(world)  # divide first: the sum of world gradients could overflow in 16 bits
        dist.all_reduce(g)


def all_reduce_gradients_flat(module: nn.Module) -> None:
    """Average every gradient across ranks with one all-reduce per dtype over the
    concatenated gradients, then copy the averages back."""
    world = dist.get_world_size()
    for grads in _by_dtype(grads_to_sync(module)):
        flat = torch.cat([g.reshape(-1) for g in grads]).div_(world)
        dist.all_reduce(flat)
        unflatten_into(flat, grads)


def unflatten_into(flat: Tensor, tensors: Iterable[Tensor]) -> None:
    """Copy consecutive slices of the 1-D ``flat`` back into ``tensors``, in order."""
    offset = 0
    for t in tensors:
        t.copy_(flat[offset : offset + t.numel()].view_as(t))
        offset += t.numel()


def _by_dtype(grads: list[Tensor]) -> list[list[Tensor]]:
    groups: dict[torch.dtype, list[Tensor]] = {}
    for g in grads:
        groups.setdefault(g.dtype, []).append(g)
    return list(groups.values())
