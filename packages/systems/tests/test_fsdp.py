"""`FullyShardedDataParallel` on 2 gloo ranks trains like one process on the full batch,
keeps 1/world of each unit per rank, frees gathered weights after each unit runs,
prefetches the next unit's weights in forward and holds no gathered weights or pending
reduce-scatters after backward."""

from __future__ import annotations

import pytest
import torch

from cs336_systems import FullyShardedDataParallel
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
KWARGS = {"mlp": dict(with_unused=False), "tied": {}, "lm": {}}


def _check_sharding(fsdp: FullyShardedDataParallel, model, world: int, name: str) -> None:
    trainable = [p for p in model.parameters() if p.requires_grad]
    local_numel = sum(s.numel() for s in fsdp.flat_shards)
    total = sum(p.numel() for p in trainable)
    assert total / world <= local_numel <= total / world + len(fsdp.flat_shards), name
    assert [p for p in fsdp.parameters() if p.requires_grad] == list(fsdp.flat_shards)
    if name == "lm":  # the embedding, 2 blocks, the final norm and the LM head
        assert len(fsdp.flat_shards) == 5


def _check_prefetch(fsdp: FullyShardedDataParallel, model) -> list:
    """While block 0 runs forward (from the second step on, once the order is known),
    block 1's all-gather is already launched."""
    seen = []
    nxt = next(u for u in fsdp._units if any(m is model.layers[1].ln1 for m, _ in u.slots))

    def hook(module, args):
        seen.append(nxt.prefetched is not None and nxt.prefetched.work is not None)

    model.layers[0].register_forward_pre_hook(hook)
    return seen


def _check_freed(fsdp: FullyShardedDataParallel) -> None:
    schedule = fsdp._schedule
    assert schedule.calls and not schedule.pending
    assert all(g.full.untyped_storage().nbytes() == 0 for g in schedule.calls)
    assert all(u.prefetched is None for u in fsdp._units)
    assert all(s.grad is not None for s in fsdp.flat_shards)


def _worker(rank: int, world: int) -> None:
    for name, kwargs in KWARGS.items():
        want = train_reference(name, STEPS, **kwargs)
        model = make(name, seed=rank, **kwargs)
        fsdp = FullyShardedDataParallel(model)
        _check_sharding(fsdp, make(name, 0, **kwargs), world, name)
        opt = adamw(fsdp.parameters())
        prefetched = _check_prefetch(fsdp, model) if name == "lm" else None
        for step in range(STEPS):
            x, y = (local(t, rank, world) for t in batch(name, step))
            opt.zero_grad()
            loss = loss_fn(fsdp, x, y)
            leaf = model.fc1 if name == "mlp" else model.head if name == "tied" else model.lm_head
            assert not hasattr(leaf, "weight"), "gathered weights must be freed after forward"
            loss.backward()
            _check_freed(fsdp)
            opt.step()
        if prefetched is not None:
            assert prefetched == [True] * STEPS, prefetched
        assert_same_params(fsdp.full_state_dict(), want, f"{name} rank {rank}")
        x, _ = batch(name, 99)
        with torch.no_grad():
            torch.testing.assert_close(fsdp(x), want(x))
        if name == "mlp":  # frozen parameters stay whole and untouched
            assert model.fc2.weight.shape == (16, 16) and model.fc2.weight.grad is None


@pytest.mark.distributed
def test_fsdp_matches_single_process_training():
    spawn(_worker, 2, timeout_s=180)
