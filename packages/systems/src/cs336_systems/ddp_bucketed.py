"""`DDPBucketed`: overlapped data parallelism with gradients grouped into buckets.

One all-reduce per parameter pays the collective's latency hundreds of times; one for
the whole model cannot start before backward ends. Buckets of ``bucket_size_mb`` MiB
sit in between: parameters are packed in reverse registration order (roughly the order
backward produces their gradients), each bucket owns a flat buffer, a gradient is
copied into its slot when ready, and the bucket's single all-reduce launches as soon as
its last gradient arrives.

    model = DDPBucketed(model, bucket_size_mb=25)   # None: one bucket for everything
    for x, y in batches:
        model.on_train_batch_start()
        loss_fn(model(x), y).backward()
        model.finish_gradient_synchronization()
        optimizer.step()

A bucket holds one dtype and device. Once synced, ``p.grad`` is a view of the bucket
(like PyTorch DDP's ``gradient_as_bucket_view``): no copy back, and one copy of the
gradients in memory; the next step's backward overwrites it. A bucket whose parameters
did not all get a gradient (unused in this step) is all-reduced in
`finish_gradient_synchronization`, with zeros in the missing slots; those parameters
keep ``grad=None``.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import torch
import torch.distributed as dist
from torch import Tensor, nn

from cs336_systems.ddp import _OverlappedDDP

_MIB = 1024 * 1024


@dataclass
class _Bucket:
    params: list[nn.Parameter]
    offsets: list[int]
    flat: Tensor
    ready: set[int] = field(default_factory=set)  # indices into params
    work: dist.Work | None = None

    def slot(self, i: int) -> Tensor:
        """Parameter ``i``'s gradient slot in the flat buffer, shaped like it."""
        p = self.params[i]
        return self.flat[self.offsets[i] : self.offsets[i] + p.numel()].view_as(p)


class DDPBucketed(_OverlappedDDP):
    def __init__(self, module: nn.Module, bucket_size_mb: float | None):
        if bucket_size_mb is not None and not bucket_size_mb > 0:
            raise ValueError(f"bucket_size_mb must be positive or None, got {bucket_size_mb!r}")
        super().__init__(module)
        cap = float("inf") if bucket_size_mb is None else bucket_size_mb * _MIB
        self.buckets = [_new_bucket(ps) for ps in _pack(self._trainable()[::-1], cap)]
        self._slot = {p: (b, i) for b in self.buckets for i, p in enumerate(b.params)}

    def on_train_batch_start(self) -> None:
        """Forget the previous step's bookkeeping (a step abandoned mid-way included)."""
        for b in self.buckets:
            b.ready.clear()
            b.work = None

    def _grad_ready(self, p: Tensor) -> None:
        bucket, i = self._slot[p]
        slot = bucket.slot(i)
        # copy in, pre-divided (the sum of world 16-bit gradients could overflow), and
        # make the slot the gradient: no copy back, and autograd's tensor is freed now
        torch.mul(p.grad, 1.0 / self._world, out=slot)
        p.grad = slot
        bucket.ready.add(i)
        if len(bucket.ready) == len(bucket.params):
            bucket.work = dist.all_reduce(bucket.flat, async_op=True)

    def finish_gradient_synchronization(self) -> None:
        """Launch the buckets left incomplete by unused parameters (zeros in their
        slots) and wait for every all-reduce: each ``p.grad``, a view of its bucket,
        then holds the rank mean."""
        for b in self.buckets:
            if b.work is None and b.ready:
                for i in set(range(len(b.params))) - b.ready:
                    b.slot(i).zero_()
                b.work = dist.all_reduce(b.flat, async_op=True)
        for b in self.buckets:
            if b.work is not None:
                b.work.wait()
        self.on_train_batch_start()


def _pack(params: list[nn.Parameter], cap_bytes: float) -> list[list[nn.Parameter]]:
    """Greedy buckets in the given order: a new bucket starts when the next parameter
    would overflow the cap or has another dtype/device; a parameter larger than the
    cap gets a bucket of its own."""
    buckets: list[list[nn.Parameter]] = []
    size = 0.0
    for p in params:
        nbytes = p.numel() * p.element_size()
        last = buckets[-1][-1] if buckets else None
        same_kind = last is not None and (last.dtype, last.device) == (p.dtype, p.device)
        if not same_kind or size + nbytes > cap_bytes:
            buckets.append([])
            size = 0.0
        buckets[-1].append(p)
        size += nbytes
    return buckets


def _new_bucket(params: list[nn.Parameter]) -> _Bucket:
    sizes = [p.numel() for p in params]
    offsets = [0, *itertools.accumulate(sizes)][:-1]
    flat = torch.zeros(sum(sizes), dtype=params[0].dtype, device=params[0].device)
    return _Bucket(params, offsets, flat)
