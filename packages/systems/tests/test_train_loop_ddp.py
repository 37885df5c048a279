"""`cs336_common.train.TrainLoop` with this package's data parallelism on 2 gloo ranks
logs the same losses and ends with the same weights as the loop in one process on the
full batch, with gradient accumulation and clipping; a DDP run checkpointed and resumed
on 2 ranks continues exactly; FSDP goes through the optimizer-factory hook."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from cs336_common.train import LoopConfig, TrainLoop
from cs336_systems import DDPBucketed, DDPIndividualParameters, FullyShardedDataParallel
from cs336_systems.dist_utils import spawn
from packages.systems.tests.dist_models import adamw, batch, local, make

STEPS, ACCUM = 4, 2


class Shards:
    """Micro-batch k is this rank's share of the full batch ``batch("lm", k)``;
    its state is the position, so a resumed run reads on where it stopped."""

    def __init__(self, rank: int = 0, world: int = 1):
        self.rank, self.world, self.k = rank, world, 0

    def __iter__(self):
        return self

    def __next__(self):
        x, y = (local(t, self.rank, self.world) for t in batch("lm", self.k))
        self.k += 1
        return x, y

    def state_dict(self) -> dict:
        return {"k": self.k}

    def load_state_dict(self, state: dict) -> None:
        self.k = state["k"]


def _train(model, batches, wrap=None, clip=0.5, **config):
    rows = []
    loop = TrainLoop(
        model,
        lambda m: adamw(m.parameters()),
        batches,
        LoopConfig(
            **{"max_steps": STEPS, "grad_accum_steps": ACCUM, "log_every": 1, **config},
            grad_clip=clip,
        ),
        wrap=wrap,
        on_log=rows.append,
    )
    loop.run()
    return rows


def _worker(rank: int, world: int, out: str) -> None:
    results = {}
    for name, wrap in {
        "individual": DDPIndividualParameters,
        "bucketed": lambda m: DDPBucketed(m, 1e-3),  # several buckets
    }.items():
        model = make("lm", seed=rank)  # the wrapper broadcasts rank 0's weights
        rows = _train(model, Shards(rank, world), wrap)
        results[name] = dict(losses=[r["train_loss"] for r in rows], params=_flat(model))

    # checkpoint after 2 steps on 2 ranks, resume to the end
    ckpt = str(Path(out).parent / "ckpt")
    _train(
        make("lm", seed=0),
        Shards(rank, world),
        DDPIndividualParameters,
        max_steps=2,
        checkpoint_dir=ckpt,
    )
    model = make("lm", seed=5)  # overwritten by the checkpoint
    rows = _train(
        model, Shards(rank, world), DDPIndividualParameters, checkpoint_dir=ckpt, resume=True
    )
    results["resumed"] = dict(losses=[r["train_loss"] for r in rows], params=_flat(model))

    # FSDP shards the parameters: the optimizer must be built on the wrapper's
    fsdp = []
    rows = _train(
        make("lm", seed=rank),
        Shards(rank, world),
        lambda m: fsdp.append(FullyShardedDataParallel(m)) or fsdp[0],
        clip=0,
    )
    full = fsdp[0].full_state_dict()
    results["fsdp"] = dict(
        losses=[r["train_loss"] for r in rows],
        params=torch.cat([v.flatten() for v in full.values()]).tolist(),
    )
    if rank == 0:
        Path(out).write_text(json.dumps(results))


def _flat(model) -> list[float]:
    return torch.cat([v.flatten() for v in model.state_dict().values()]).tolist()


@pytest.mark.distributed
def test_loop_with_ddp_matches_one_process(tmp_path):
    out = tmp_path / "results.json"
    spawn(_worker, 2, str(out), timeout_s=240)
    got = json.loads(out.read_text())

    model = make("lm", seed=0)
    rows = _train(model, Shards())
    want_losses, want = [r["train_loss"] for r in rows], torch.tensor(_flat(model))
    no_clip_model = make("lm", seed=0)
    no_clip_rows = _train(no_clip_model, Shards(), clip=0)

    for name in ("individual", "bucketed"):
        torch.testing.assert_close(got[name]["losses"], want_losses, msg=name)
        torch.testing.assert_close(torch.tensor(got[name]["params"]), want, msg=name)
    torch.testing.assert_close(got["resumed"]["losses"], want_losses[2:])
    torch.testing.assert_close(torch.tensor(got["resumed"]["params"]), want)
    torch.testing.assert_close(got["fsdp"]["losses"], [r["train_loss"] for r in no_clip_rows])
    torch.testing.assert_close(
        torch.tensor(got["fsdp"]["params"]), torch.tensor(_flat(no_clip_model))
    )
