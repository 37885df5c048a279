"""`DDPBucketed`: overlapped data parallelism with gradients grouped into buckets.

One all-reduce per parameter pays the collective's latency hundreds of times; one for
the whole model cannot start before backward ends. Buckets of ``bucket_size_mb`` MiB
sit in between: parameters are packed in reverse registration order (roughly the order
backward produces their gradients), each bucket owns a flat buffer, and the bucket's
single all-reduce launches as soon as its last gradient arrives, while backward goes on
with the layers below.

    model = DDPBucketed(model, bucket_size_mb=25)   # None: one bucket for everything
    for x, y in batches:
        model.on_train_batch_start()
        loss_fn(model(x), y).backward()
        model.finish_gradient_synchronization()
        optimizer.step()
        optimizer.zero_grad()                       # set_to_none=True or False: both work

This is what PyTorch DDP's reducer does with ``gradient_as_bucket_view=True``. The
gradient hooks run in Python on the thread that drives backward (their cost is step
time when the host is the bottleneck), so they are kept to a few list operations:

- Every ``p.grad`` is a view of its bucket ("slot"), so autograd accumulates straight
  into the bucket. The optimizer's ``zero_grad(set_to_none=True)`` drops those views;
  `forward` points every dropped ``p.grad`` back at its zeroed slot (one zeroing per
  step, not a copy per gradient). A gradient that is still autograd's own tensor when
  its hook fires (dropped after forward) is copied into its slot, so nothing depends on
  the order of ``zero_grad`` and ``forward``.
- The 1/world scaling costs no pass per gradient: on NCCL the all-reduce averages
  (``ReduceOp.AVG``, which multiplies by 1/world before summing, so 16-bit sums cannot
  overflow); gloo has no AVG, so there each bucket is summed and then divided.
- Buckets are launched in bucket order (a bucket that completes early waits for the
  ones before it), so every rank issues its collectives in the same order, as NCCL
  requires; the handles are waited for once, in `finish_gradient_synchronization`.
- Under `no_sync` (gradient accumulation) the gradients accumulate in their slots and
  nothing is launched; the first backward after the block syncs the sum.

A bucket holds one dtype and device. Like PyTorch DDP, the buckets are rebuilt once,
after the first synced step, in the order the gradients actually arrived (rank 0's
order, so every rank agrees): buckets then complete in launch order and none waits for
a gradient that backward produces much later than its others.

A parameter that gets no gradient in a step (in no micro-batch) keeps the ``grad`` it
had before the step (None after ``zero_grad()``), as in one process; its bucket is
all-reduced in `finish_gradient_synchronization`. One that got a gradient only inside
`no_sync` is synced there too. Like PyTorch DDP without
``find_unused_parameters``, every rank is assumed to use the same parameters.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import torch
import torch.distributed as dist
from torch import Tensor, nn

from cs336_systems.ddp import _OverlappedDDP

_MIB = 1024 * 1024
# what a parameter got in the current step (``_Bucket.got``)
_NOTHING, _LOCAL, _SYNCED = 0, 1, 2  # no gradient; only inside no_sync; in the synced pass


@dataclass
class _Bucket:
    params: list[nn.Parameter]
    flat: Tensor
    slots: list[Tensor]  # per parameter: its gradient's view of ``flat``, shaped like it
    # per parameter: whether `forward` lent it its slot (its grad was None) since the
    # last sync; per step: _NOTHING/_LOCAL/_SYNCED per parameter, how many have not
    # reached _SYNCED, the all-reduce
    lent: list[bool] = field(init=False)
    got: list[int] = field(init=False)
    missing: int = field(init=False)
    work: dist.Work | None = field(init=False)

    def __post_init__(self) -> None:
        self.lent = [False] * len(self.params)
        self.reset()

    def reset(self) -> None:
        n = len(self.params)
        self.got, self.missing, self.work = [_NOTHING] * n, n, None


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
        self._averages = dist.get_backend(process_group) == "nccl"
        self._op = dist.ReduceOp.AVG if self._averages else dist.ReduceOp.SUM
        self._launched = 0  # buckets launched this step: always a prefix of self.buckets
        self._arrivals: list[nn.Parameter] | None = []  # None once the buckets are rebuilt
        self._build(self._trainable()[::-1])

    def _build(self, order: list[nn.Parameter]) -> None:
        self.buckets = [_new_bucket(ps) for ps in _pack(order, self._cap)]
        self._slot = {p: (b, i) for b in self.buckets for i, p in enumerate(b.params)}

    def forward(self, *args, **kwargs):
        if torch.is_grad_enabled():
            self._lend_slots()
        return self.module(*args, **kwargs)

    def _lend_slots(self) -> None:
        """Point every dropped ``p.grad`` (None) at its slot, zeroed in one batched call
        (a whole bucket's buffer when all its gradients were dropped)."""
        zero = []
        for b in self.buckets:
            lent = [i for i, p in enumerate(b.params) if p.grad is None]
            for i in lent:
                b.params[i].grad = b.slots[i]
                b.lent[i] = True
            zero += [b.flat] if len(lent) == len(b.params) else [b.slots[i] for i in lent]
        if zero:
            torch._foreach_zero_(zero)

    def on_train_batch_start(self) -> None:
        """Forget the previous step's bookkeeping (a step abandoned mid-way included);
        which gradients `forward` lent is kept until the next sync."""
        for b in self.buckets:
            b.reset()
        self._launched = 0

    def _grad_ready(self, p: Tensor) -> None:
        b, i = self._slot[p]
        if not self._sync:
            b.got[i] = b.got[i] or _LOCAL
            return
        if b.got[i] == _SYNCED:
            raise RuntimeError(
                "DDPBucketed: a second synced backward in one step; call "
                "finish_gradient_synchronization() after each, or run all but the last "
                "inside no_sync()"
            )
        b.got[i] = _SYNCED
        if p.grad is not b.slots[i]:  # dropped after forward: autograd made a new tensor
            _into_slot(p, b.slots[i])
        if self._arrivals is not None:
            self._arrivals.append(p)
        b.missing -= 1
        if not b.missing:
            self._launch_complete()

    def _launch_complete(self) -> None:
        """Launch the complete buckets at the head of the queue, in bucket order."""
        while self._launched < len(self.buckets) and not self.buckets[self._launched].missing:
            self._launch(self.buckets[self._launched])

    def _launch(self, b: _Bucket) -> None:
        b.work = dist.all_reduce(b.flat, op=self._op, group=self._group, async_op=True)
        self._launched += 1

    def finish_gradient_synchronization(self) -> None:
        """Launch the buckets left incomplete by parameters without a gradient in the
        synced backward, in order, and wait for every all-reduce: each ``p.grad``, a
        view of its bucket, then holds the rank mean."""
        for b in self.buckets[self._launched :]:
            _settle_missing(b)
            self._launch(b)
        for b in self.buckets:
            b.work.wait()
            if not self._averages:
                b.flat.div_(self._world)
            b.lent = [False] * len(b.params)
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
        self._build([params[i] for i in order[0]])
        for b in self.buckets:
            for p, slot in zip(b.params, b.slots, strict=True):
                if p.grad is not None:
                    _into_slot(p, slot)


def _into_slot(p: Tensor, slot: Tensor) -> None:
    """Make ``p.grad`` its slot, copying the gradient in unless it is already there."""
    if p.grad is not slot:
        slot.copy_(p.grad)
        p.grad = slot


def _settle_missing(b: _Bucket) -> None:
    """Before an incomplete bucket's all-reduce: a gradient from no_sync passes only is
    synced like the others. A parameter with no gradient keeps the ``grad`` it had
    before the step: None if `forward` lent it its (zeroed) slot, else the slot's value,
    the same on every rank, so the average leaves it as it was; another tensor is left
    alone and the slot zeroed."""
    for i, (p, slot) in enumerate(zip(b.params, b.slots, strict=True)):
        if b.got[i] == _LOCAL:
            _into_slot(p, slot)
        elif b.got[i] == _NOTHING and b.lent[i]:
            p.grad = None
        elif b.got[i] == _NOTHING and p.grad is not slot:
            slot.zero_()


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
