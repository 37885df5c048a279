"""`DDPBucketed`: overlapped data parallelism with gradients grouped into buckets.

One all-reduce per parameter pays the collective's latency hundreds of times; one for
the whole model cannot start before backward ends. Buckets of ``bucket_size_mb`` MiB
sit in between: parameters are packed in reverse registration order (roughly the order
backward produces their gradients), each bucket owns a flat buffer, a gradient is
copied into its slot when ready, and the bucket's single all-reduce launches as soon as
its last gradient arrives, while backward goes on with the layers below.

    model = DDPBucketed(model, bucket_size_mb=25)   # None: one bucket for everything
    for x, y in batches:
        model.on_train_batch_start()
        loss_fn(model(x), y).backward()
        model.finish_gradient_synchronization()
        optimizer.step()

This is what PyTorch DDP's reducer does with ``gradient_as_bucket_view=True``, with the
per-gradient work kept to one kernel and a few dictionary operations (it runs on the
thread that drives backward):

- ``p.grad`` becomes a view of its bucket: no copy back, one copy of the gradients in
  memory. If the optimizer keeps the gradients (``zero_grad(set_to_none=False)``),
  autograd accumulates straight into the bucket and nothing is copied; if it drops
  them, the fresh gradient is copied in (one kernel) and autograd's tensor is freed.
- The 1/world scaling costs no extra pass: on NCCL the all-reduce averages
  (``ReduceOp.AVG``, which multiplies by 1/world before summing, so 16-bit sums cannot
  overflow); gloo has no AVG, so there the copy multiplies on the way in.
- Buckets are launched in bucket order (a bucket that completes early waits for the
  ones before it), so every rank issues its collectives in the same order, as NCCL
  requires; the handles are waited for once, in `finish_gradient_synchronization`.

A bucket holds one dtype and device. Like PyTorch DDP, the buckets are rebuilt once,
after the first synced step, in the order the gradients actually arrived (rank 0's
order, so every rank agrees): buckets then complete in launch order and none waits for
a gradient that backward produces much later than its others. A bucket whose parameters
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
    flat: Tensor
    slots: list[Tensor]  # per parameter: its gradient's view of ``flat``, shaped like it
    ready: set[int] = field(default_factory=set)  # indices into params
    work: dist.Work | None = None


class DDPBucketed(_OverlappedDDP):
    def __init__(
        self,
        module: nn.Module,
        bucket_size_mb: float | None,
        *,
        process_group: dist.ProcessGroup | None = None,
    ):
        if bucket_size_mb is not None and not bucket_size_mb > 0:
            raise ValueError(f"bucket_size_mb must be positive or None, got {bucket_size_mb!r}")
        super().__init__(module, process_group)
        self._cap = float("inf") if bucket_size_mb is None else bucket_size_mb * _MIB
        averages = dist.get_backend(process_group) == "nccl"
        self._op = dist.ReduceOp.AVG if averages else dist.ReduceOp.SUM
        self._scale = 1.0 if averages else 1.0 / self._world  # applied on the way in
        self._launched = 0  # buckets launched this step: always a prefix of self.buckets
        self._arrivals: list[nn.Parameter] | None = []  # None once the buckets are rebuilt
        self._build(self._trainable()[::-1])

    def _build(self, order: list[nn.Parameter]) -> None:
        self.buckets = [_new_bucket(ps) for ps in _pack(order, self._cap)]
        self._slot = {p: (b, i) for b in self.buckets for i, p in enumerate(b.params)}

    def on_train_batch_start(self) -> None:
        """Forget the previous step's bookkeeping (a step abandoned mid-way included)."""
        for b in self.buckets:
            b.ready.clear()
            b.work = None
        self._launched = 0

    def _grad_ready(self, p: Tensor) -> None:
        bucket, i = self._slot[p]
        slot, grad = bucket.slots[i], p.grad
        if grad is not slot:  # a fresh gradient: copy it in (scaled on gloo) and free it
            if self._scale == 1.0:
                slot.copy_(grad)
            else:
                torch.mul(grad, self._scale, out=slot)
            p.grad = slot
        elif self._scale != 1.0:  # autograd accumulated into the bucket itself
            slot.mul_(self._scale)
        bucket.ready.add(i)
        if self._arrivals is not None:
            self._arrivals.append(p)
        if len(bucket.ready) == len(bucket.params):
            self._launch_complete()

    def _launch_complete(self) -> None:
        """Launch the complete buckets at the head of the queue, in bucket order."""
        while self._launched < len(self.buckets):
            b = self.buckets[self._launched]
            if len(b.ready) < len(b.params):
                return
            self._launch(b)

    def _launch(self, b: _Bucket) -> None:
        b.work = dist.all_reduce(b.flat, op=self._op, group=self._group, async_op=True)
        self._launched += 1

    def finish_gradient_synchronization(self) -> None:
        """Launch the buckets left incomplete by unused parameters (zeros in their
        slots), in order, and wait for every all-reduce: each ``p.grad``, a view of its
        bucket, then holds the rank mean."""
        for b in self.buckets[self._launched :]:
            if not b.ready:  # no gradient at all (the same on every rank): skipped
                self._launched += 1
                continue
            for i in set(range(len(b.params))) - b.ready:
                b.slots[i].zero_()
            self._launch(b)
        for b in self.buckets:
            if b.work is not None:
                b.work.wait()
        if self._arrivals:
            self._rebuild_in_arrival_order()
        self.on_train_batch_start()

    def _rebuild_in_arrival_order(self) -> None:
        """Repack the buckets in rank 0's gradient arrival order (parameters that got no
        gradient last), moving the synced gradients into the new buckets."""
        index = {p: i for i, p in enumerate(self._trainable())}
        arrived = [index[p] for p in self._arrivals]
        self._arrivals = None
        seen = set(arrived)
        order = [arrived + [i for i in reversed(range(len(index))) if i not in seen]]
        dist.broadcast_object_list(order, src=self._root, group=self._group)
        params = list(index)
        old_grads = {p: p.grad for p in params}
        self._build([params[i] for i in order[0]])
        for b in self.buckets:
            for p, slot in zip(b.params, b.slots, strict=True):
                if old_grads[p] is not None:
                    slot.copy_(old_grads[p])
                    p.grad = slot


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
    offsets = itertools.accumulate(sizes, initial=0)
    flat = torch.zeros(sum(sizes), dtype=params[0].dtype, device=params[0].device)
    slots = [flat[o : o + p.numel()].view_as(p) for o, p in zip(offsets, params, strict=False)]
    return _Bucket(params, flat, slots)
