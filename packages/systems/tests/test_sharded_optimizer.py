"""`ShardedOptimizer` on 2 gloo ranks: bit-for-bit `cs336_common.train.AdamW`, half the state
per rank, a state dict interchangeable with AdamW's, and DDP + sharding equal to
full-batch training.
"""

from __future__ import annotations

import copy

import pytest
import torch
import torch.distributed as dist

from cs336_common.train import AdamW
from cs336_systems import DDPIndividualParameters, ShardedOptimizer
from cs336_systems.dist_utils import spawn
from packages.systems.tests.dist_models import (
    assert_same_params,
    batch,
    local,
    loss_fn,
    make,
    train_reference,
)

KW = dict(lr=1e-2, weight_decay=0.1)
SMALL = 2e-3  # MiB per bucket: several buckets in the tiny LM


def _state_bytes(state) -> int:
    return sum(
        v.numel() * v.element_size()
        for s in state.values()
        for v in s.values()
        if torch.is_tensor(v)
    )


def _split(model):
    """All parameters but the LM head's, and the LM head (added later as its own group)."""
    head = model.lm_head.weight
    return [p for p in model.parameters() if p is not head], head


def _exact_adamw(rank: int, world: int) -> None:
    model, ref = make("lm", 0), make("lm", 0)
    body, head = _split(model)
    opt = ShardedOptimizer(body, AdamW, bucket_size_mb=SMALL, **KW)
    ref_body, ref_head = _split(ref)
    ref_opt = AdamW(ref_body, **KW)
    for step in range(4):
        if step == 1:  # a new group with its own learning rate
            opt.add_param_group({"params": [head], "lr": 3e-2})
            ref_opt.add_param_group({"params": [ref_head], "lr": 3e-2})
        if step == 2:  # a schedule editing the full groups
            opt.param_groups[0]["lr"] = ref_opt.param_groups[0]["lr"] = 5e-3
        for m, o in ((model, opt), (ref, ref_opt)):
            o.zero_grad()
            loss_fn(m, *batch("lm", step)).backward()  # same full batch on every rank
            o.step()
        for (k, p), q in zip(model.state_dict().items(), ref.state_dict().values(), strict=True):
            assert torch.equal(p, q), f"step {step}: {k} differs from AdamW"

    # 1/world of AdamW's state on each rank (give or take the padding of each bucket to
    # a multiple of world elements: two moments of float64), exactly all of it across ranks
    assert len(opt._buckets) > 4  # small buckets: slices cut through parameters
    mine, total = _state_bytes(opt.state), _state_bytes(ref_opt.state)
    per_rank = [None] * world
    dist.all_gather_object(per_rank, mine)
    pad = len(opt._buckets) * (world - 1) * 2 * 8
    assert sum(per_rank) == total, (per_rank, total)
    assert max(per_rank) <= total / world + pad, (per_rank, total)

    # the state dict is AdamW's, and loading AdamW's resumes exactly
    sd, ref_sd = opt.state_dict(), ref_opt.state_dict()
    assert sd["param_groups"] == ref_sd["param_groups"]
    assert sd["state"].keys() == ref_sd["state"].keys()
    for i, s in ref_sd["state"].items():
        for k, v in s.items():
            got = sd["state"][i][k]
            assert torch.equal(got, v) if torch.is_tensor(v) else got == v, (i, k)
    resumed = ShardedOptimizer(body, AdamW, bucket_size_mb=SMALL, **KW)
    resumed.add_param_group({"params": [head]})
    resumed.load_state_dict(copy.deepcopy(ref_sd))  # AdamW's state_dict() aliases its state
    for m, o in ((model, resumed), (ref, ref_opt)):
        o.zero_grad()
        loss_fn(m, *batch("lm", 9)).backward()
        o.step()
    assert_same_params(model.state_dict(), ref, f"resumed rank {rank}")
    resumed.zero_grad()
    assert all(p.grad is None for p in model.parameters())


def _with_ddp(rank: int, world: int) -> None:
    want = train_reference("lm", 3)
    model = make("lm", rank)
    ddp = DDPIndividualParameters(model)
    opt = ShardedOptimizer(model.parameters(), AdamW, **KW)
    for step in range(3):
        x, y = (local(t, rank, world) for t in batch("lm", step))
        opt.zero_grad()
        loss_fn(ddp, x, y).backward()
        ddp.finish_gradient_synchronization()
        opt.step()
    assert_same_params(model.state_dict(), want, f"DDP + sharded rank {rank}")


def _worker(rank: int, world: int) -> None:
    _exact_adamw(rank, world)
    _with_ddp(rank, world)


@pytest.mark.distributed
def test_sharded_optimizer():
    spawn(_worker, 2, timeout_s=180)
