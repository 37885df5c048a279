"""Every DDP flavour, on 2 gloo ranks, trains exactly like one process on the full batch.

One spawn runs all checks (a spawn costs seconds): 3 models (frozen + unused
parameters, tied weights, a TransformerLM) x naive, flat, per-parameter hooks, buckets
of every size, and gradient accumulation under ``no_sync``; wrappers must be freed once
unreferenced (gradient hooks must not keep them alive). Ranks other than 0 start
from different weights, so the construction-time broadcast is tested too. Besides:
`DDPBucketed`'s gradients equal PyTorch DDP's (``gradient_as_bucket_view=True``) step by
step, the same check as on NCCL; autograd accumulates into the buckets; parameters used
only inside ``no_sync`` or in no micro-batch get one process's gradients.
"""

from __future__ import annotations

import gc
import weakref

import pytest
import torch
import torch.distributed as dist

from cs336_systems import (
    DDPBucketed,
    DDPIndividualParameters,
    all_reduce_gradients,
    all_reduce_gradients_flat,
)
from cs336_systems.ddp import broadcast_module
from cs336_systems.dist_utils import spawn
from packages.systems.tests.dist_models import (
    adamw,
    assert_same_params,
    batch,
    grads_match_torch_ddp,
    local,
    loss_fn,
    make,
    train_reference,
)

STEPS = 3


def _two_bucket_cap_mb(model) -> float:
    """A cap that the greedy packing must split into exactly two buckets."""
    sizes = [p.numel() * p.element_size() for p in model.parameters() if p.requires_grad][::-1]
    total = sum(sizes)
    cap = min(max(sum(sizes[:k]), total - sum(sizes[:k])) for k in range(1, len(sizes)))
    return cap / 2**20


def _wrap(variant: str, model):
    """(module to call, gradient sync to run after backward, expected bucket count)."""
    n_params = sum(p.requires_grad for p in model.parameters())
    if variant in ("naive", "flat"):
        broadcast_module(model)
        sync = all_reduce_gradients if variant == "naive" else all_reduce_gradients_flat
        return model, lambda: sync(model), None
    if variant.startswith("individual"):
        ddp = DDPIndividualParameters(model)
        return ddp, ddp.finish_gradient_synchronization, None
    cap, n_buckets = {
        "bucketed-one": (None, 1),
        "bucketed-two": (_two_bucket_cap_mb(model), 2),
        "bucketed-each": (1e-9, n_params),
        "bucketed-accum": (_two_bucket_cap_mb(model), 2),
        "bucketed-dropped": (_two_bucket_cap_mb(model), 2),
        "bucketed-group": (_two_bucket_cap_mb(model), 2),
    }[variant]
    # over a process group of its own (here: the same ranks)
    group = dist.new_group(backend="gloo") if variant == "bucketed-group" else None
    ddp = DDPBucketed(model, cap, process_group=group)
    return ddp, ddp.finish_gradient_synchronization, n_buckets


def _train(name: str, variant: str, rank: int, world: int):
    model = make(name, seed=rank)  # rank 0's weights must win the broadcast
    accumulated_at = _record_grad_storage(model)  # runs before the wrapper's hooks
    wrapped, sync, n_buckets = _wrap(variant, model)
    if n_buckets is not None:
        assert len(wrapped.buckets) == n_buckets, (name, variant, len(wrapped.buckets))
    opt = adamw(model.parameters())
    for step in range(STEPS):
        x, y = (local(t, rank, world) for t in batch(name, step))
        opt.zero_grad(set_to_none=variant != "bucketed-two")  # grads stay bucket views
        if hasattr(wrapped, "on_train_batch_start"):
            wrapped.on_train_batch_start()
        if variant.endswith("accum"):  # two half batches, the first without sync
            with wrapped.no_sync():
                (loss_fn(wrapped, x[::2], y[::2]) / 2).backward()
            (loss_fn(wrapped, x[1::2], y[1::2]) / 2).backward()
        elif variant == "bucketed-dropped":  # grads dropped after forward: copied in
            loss = loss_fn(wrapped, x, y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
        else:
            loss_fn(wrapped, x, y).backward()
        sync()
        if variant.startswith("bucketed") and step > 0:  # after the rebuild
            copied = variant == "bucketed-dropped"
            _check_grads_are_bucket_views(wrapped, model, accumulated_at, copied)
        opt.step()
    if name == "lm" and variant == "bucketed-each":
        _check_arrival_order(wrapped, model)
    return model, weakref.ref(wrapped)


def _record_grad_storage(model) -> dict[str, int]:
    """name -> data pointer of the gradient autograd accumulated into, last backward."""
    where: dict[str, int] = {}
    for name, p in model.named_parameters():
        if p.requires_grad:
            p.register_post_accumulate_grad_hook(
                lambda p, name=name: where.__setitem__(name, p.grad.data_ptr())
            )
    return where


def _check_grads_are_bucket_views(ddp: DDPBucketed, model, accumulated_at, copied: bool):
    """Every synced gradient is its bucket slot; autograd accumulated straight into it
    unless the gradients were dropped after forward (then they were copied in)."""
    names = {p: n for n, p in model.named_parameters()}
    for b in ddp.buckets:
        for p, slot in zip(b.params, b.slots, strict=True):
            if p.grad is not None:
                assert p.grad is slot, names[p]
                assert (accumulated_at[names[p]] == slot.data_ptr()) != copied, names[p]


def _check_arrival_order(ddp: DDPBucketed, model) -> None:
    """After the first step the buckets follow backward's order: a block's second FFN
    matrix (first gradient of the block) before its ln2 (which comes after w1 and w3),
    though registration order puts ln2 last."""
    order = [id(b.params[0]) for b in ddp.buckets]
    block = model.layers[-1]
    assert order.index(id(block.ffn.w2.weight)) < order.index(id(block.ln2.weight))
    assert order.index(id(block.ffn.w1.weight)) < order.index(id(block.ln2.weight))


ALL = ("naive", "flat", "individual", "individual-accum")
ALL += ("bucketed-one", "bucketed-two", "bucketed-each", "bucketed-accum", "bucketed-dropped")
# the LM adds no new case for the baselines and accumulation; it checks the wrappers at scale
VARIANTS = {
    "mlp": (*ALL, "bucketed-group"),
    "tied": ALL,
    "lm": ("individual", "bucketed-two", "bucketed-each"),
}


class _Gated(torch.nn.Module):
    """``extra`` takes part only while ``use_extra`` is set; ``never`` never does."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.lin = torch.nn.Linear(6, 6)
        self.extra = torch.nn.Parameter(torch.randn(6))
        self.never = torch.nn.Parameter(torch.randn(3))
        self.use_extra = True
        self.double()

    def forward(self, x):
        h = self.lin(x)
        return torch.tanh(h + self.extra if self.use_extra else h)


# per step: zero_grad's set_to_none (None: no zero_grad), and whether each micro-batch
# uses ``extra`` (the first under no_sync). ``extra`` gets a gradient from the no_sync
# pass only; none in a step without zeroing (keeps the last), after zeroing (stays
# zeros) or dropping (stays None) its gradient; one from the synced pass only.
_GATED_STEPS = (
    (None, (True, False)),
    (None, (False, False)),
    (False, (False, False)),
    (True, (False, False)),
    (True, (False, True)),
)


def _gated_loss(call, model: _Gated, x: torch.Tensor, use_extra: bool) -> torch.Tensor:
    model.use_extra = use_extra
    return call(x).square().mean() / 2  # one of two micro-batches


def _check_partial_use(rank: int, world: int, cap_mb: float | None) -> None:
    """Gradients equal one process's on every rank's micro-batches, step by step, for
    parameters used only inside no_sync, or in no micro-batch of a step."""
    ours, ref = _Gated(), _Gated()
    ddp = DDPBucketed(ours, cap_mb)
    for step, (set_to_none, uses) in enumerate(_GATED_STEPS):
        x = torch.randn(world, 2, 4, 6, generator=torch.Generator().manual_seed(step)).double()
        if set_to_none is not None:
            ours.zero_grad(set_to_none=set_to_none)
            ref.zero_grad(set_to_none=set_to_none)
        ddp(x[rank, 0])  # a forward without backward (evaluation) lends the dropped grads
        ddp.on_train_batch_start()
        with ddp.no_sync():
            _gated_loss(ddp, ours, x[rank, 0], uses[0]).backward()
        _gated_loss(ddp, ours, x[rank, 1], uses[1]).backward()
        ddp.finish_gradient_synchronization()
        for r in range(world):
            for part, use in enumerate(uses):
                (_gated_loss(ref, ref, x[r, part], use) / world).backward()
        for (name, p), q in zip(ours.named_parameters(), ref.parameters(), strict=True):
            what = f"step {step} {name} rank {rank} cap {cap_mb}"
            assert (p.grad is None) == (q.grad is None), what
            if q.grad is not None:
                torch.testing.assert_close(p.grad, q.grad, rtol=1e-12, atol=1e-14, msg=what)
    # two synced backward passes in one step: refused, not silently double-counted
    loss_fn(ddp, x[rank, 0], x[rank, 0]).backward()
    with pytest.raises(RuntimeError, match="second synced backward"):
        loss_fn(ddp, x[rank, 1], x[rank, 1]).backward()
    ddp.finish_gradient_synchronization()  # both ranks launched the same buckets


def _worker(rank: int, world: int) -> None:
    grads_match_torch_ddp(rank, world, torch.device("cpu"))
    for cap_mb in (None, 1e-9):  # one bucket; one per parameter
        _check_partial_use(rank, world, cap_mb)
    for name, variants in VARIANTS.items():
        want = train_reference(name, STEPS)
        for variant in variants:
            model, wrapper = _train(name, variant, rank, world)
            assert_same_params(model.state_dict(), want, f"{name}/{variant} rank {rank}")
            if name == "mlp":
                assert model.unused.grad is None and model.fc2.weight.grad is None
            del model
            gc.collect()
            assert wrapper() is None, f"{variant}: the wrapper and its model leaked"


@pytest.mark.distributed
def test_ddp_matches_single_process_training():
    spawn(_worker, 2, timeout_s=240)


def test_bucket_size_must_be_positive():
    with pytest.raises(ValueError, match="bucket_size_mb"):
        DDPBucketed(torch.nn.Linear(2, 2), 0)
