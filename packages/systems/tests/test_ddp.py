"""Every DDP flavour, on 2 gloo ranks, trains exactly like one process on the full batch.

One spawn runs all checks (a spawn costs seconds): 3 models (frozen + unused
parameters, tied weights, a TransformerLM) x naive, flat, per-parameter hooks, buckets
of every size, and gradient accumulation under ``no_sync``; wrappers must be freed once
unreferenced (gradient hooks must not keep them alive). Ranks other than 0 start
from different weights, so the construction-time broadcast is tested too.
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
        "bucketed-group": (_two_bucket_cap_mb(model), 2),
    }[variant]
    # over a process group of its own (here: the same ranks)
    group = dist.new_group(backend="gloo") if variant == "bucketed-group" else None
    ddp = DDPBucketed(model, cap, process_group=group)
    return ddp, ddp.finish_gradient_synchronization, n_buckets


def _train(name: str, variant: str, rank: int, world: int):
    model = make(name, seed=rank)  # rank 0's weights must win the broadcast
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
        else:
            loss_fn(wrapped, x, y).backward()
        sync()
        opt.step()
    if name == "lm" and variant == "bucketed-each":
        _check_arrival_order(wrapped, model)
    return model, weakref.ref(wrapped)


def _check_arrival_order(ddp: DDPBucketed, model) -> None:
    """After the first step the buckets follow backward's order: a block's second FFN
    matrix (first gradient of the block) before its ln2 (which comes after w1 and w3),
    though registration order puts ln2 last."""
    order = [id(b.params[0]) for b in ddp.buckets]
    block = model.layers[-1]
    assert order.index(id(block.ffn.w2.weight)) < order.index(id(block.ln2.weight))
    assert order.index(id(block.ffn.w1.weight)) < order.index(id(block.ln2.weight))


ALL = ("naive", "flat", "individual", "individual-accum")
ALL += ("bucketed-one", "bucketed-two", "bucketed-each", "bucketed-accum")
# the LM adds no new case for the baselines and accumulation; it checks the wrappers at scale
VARIANTS = {
    "mlp": (*ALL, "bucketed-group"),
    "tied": ALL,
    "lm": ("individual", "bucketed-two", "bucketed-each"),
}


def _worker(rank: int, world: int) -> None:
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
