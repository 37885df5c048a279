"""CPU/gloo sanity check (not a goal measurement): the previous `DDPBucketed` against the
current one and PyTorch DDP (``gradient_as_bucket_view=True``), interleaved in one run.

The previous implementation is not kept in the package; extract it next to the repo:

    mkdir -p /tmp/old && git archive 5ca0af1 shared packages/systems | tar -x -C /tmp/old
    uv run python packages/systems/benchmarks/results/cpu_gloo_ddp2/compare_old_new.py \
        --old /tmp/old lm --layers 16 --bucket-mb 1 --rounds 15
    uv run python .../compare_old_new.py --old /tmp/old hooks --params 2000

``lm``: 2 gloo ranks (one thread each) train a small `TransformerLM` with AdamW and
``zero_grad(set_to_none=True)``; per round and variant the mean step time (forward,
backward, sync, optimizer) of the slower rank; variants rotate each round.
``hooks``: one rank, a module of many 8-element parameters in one bucket: host time of
forward+backward+sync per parameter, i.e. what each gradient's hook path costs.
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import sys
import time
import types
from pathlib import Path

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel


def load_old(root: Path):
    """The previous `DDPBucketed`, on top of the previous `_OverlappedDDP`."""
    src_dir = root / "packages/systems/src/cs336_systems"
    spec = importlib.util.spec_from_file_location("old_ddp", src_dir / "ddp.py")
    base = importlib.util.module_from_spec(spec)
    sys.modules["old_ddp"] = base
    spec.loader.exec_module(base)
    src = (src_dir / "ddp_bucketed.py").read_text()
    src = src.replace("from cs336_systems.ddp import", "from old_ddp import")
    mod = types.ModuleType("old_ddp_bucketed")
    sys.modules[mod.__name__] = mod
    exec(compile(src, "old_ddp_bucketed.py", "exec"), mod.__dict__)
    return mod.DDPBucketed


def wrap(name: str, model, bucket_mb: float, old_cls):
    """(callable model, sync after backward) for a variant."""
    from cs336_systems import DDPBucketed

    if name == "torch":
        ddp = DistributedDataParallel(model, bucket_cap_mb=bucket_mb, gradient_as_bucket_view=True)
        return ddp, lambda: None
    ddp = (old_cls if name == "old" else DDPBucketed)(model, bucket_mb)
    return ddp, ddp.finish_gradient_synchronization


def lm_worker(rank: int, world: int, args) -> None:
    from cs336_common import TransformerLM

    torch.set_num_threads(1)
    old_cls = load_old(args.old)
    g = torch.Generator().manual_seed(rank)
    ids = torch.randint(0, 256, (2, 17), generator=g)
    x, y = ids[:, :-1], ids[:, 1:]
    names = ["old", "new", "torch"]
    times: dict[str, list[float]] = {n: [] for n in names}
    for r in range(args.rounds):
        for name in names[r % 3 :] + names[: r % 3]:
            torch.manual_seed(0)
            model = TransformerLM(
                vocab_size=256, context_length=16, d_model=32, num_layers=args.layers,
                num_heads=4, d_ff=128,
            )  # fmt: skip
            ddp, sync = wrap(name, model, args.bucket_mb, old_cls)
            opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
            steps = []
            for _ in range(args.warmup + args.steps):
                dist.barrier()
                start = time.perf_counter()
                ddp.on_train_batch_start() if name != "torch" else None
                logits = ddp(x)
                torch.nn.functional.cross_entropy(logits.flatten(0, 1), y.flatten()).backward()
                sync()
                opt.step()
                opt.zero_grad(set_to_none=True)
                steps.append(time.perf_counter() - start)
            t = torch.tensor(statistics.mean(steps[args.warmup :]))
            dist.all_reduce(t, op=dist.ReduceOp.MAX)
            times[name].append(t.item() * 1e3)
    if rank == 0:
        n_params = sum(1 for _ in model.parameters())
        print(f"CPU/gloo, 2 ranks x 1 thread, {n_params} parameter tensors, {vars(args)}")
        report(times, "step ms")


def report(times: dict[str, list[float]], unit: str) -> None:
    def ratio(a: str, b: str) -> str:
        rs = [p / q for p, q in zip(times[a], times[b], strict=True)]
        return f"{statistics.median(rs):.3f} ({min(rs):.3f}-{max(rs):.3f})"

    for name, ts in times.items():
        print(
            f"{name:6s} {unit} median {statistics.median(ts):8.2f} "
            f"(min {min(ts):.2f}, max {max(ts):.2f})  vs torch {ratio(name, 'torch')}"
        )
    print(f"new / old per round: median (range) {ratio('new', 'old')}")


class ManyParams(torch.nn.Module):
    def __init__(self, n: int):
        super().__init__()
        self.ps = torch.nn.ParameterList(torch.nn.Parameter(torch.randn(8)) for _ in range(n))

    def forward(self, x):
        return sum((p * x).sum() for p in self.ps)


def hooks(args) -> None:
    from cs336_systems.dist_utils import free_port

    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo", init_method=f"tcp://127.0.0.1:{free_port()}", rank=0, world_size=1
    )
    old_cls = load_old(args.old)
    x = torch.randn(8)
    times: dict[str, list[float]] = {n: [] for n in ("plain", "old", "new", "torch")}
    for _ in range(args.rounds):
        for name in times:
            model = ManyParams(args.params)
            ddp, sync = (model, lambda: None) if name == "plain" else wrap(name, model, 25, old_cls)
            steps = []
            for _ in range(args.warmup + args.steps):
                model.zero_grad(set_to_none=True)
                start = time.perf_counter()
                ddp(x).backward()
                sync()
                steps.append(time.perf_counter() - start)
            times[name].append(statistics.mean(steps[args.warmup :]) * 1e6 / args.params)
    print(f"CPU/gloo, 1 rank, {args.params} parameters of 8 elements, one bucket")
    report(times, "us/param")
    dist.barrier()
    dist.destroy_process_group()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--old", type=Path, required=True, help="extracted tree of the old commit")
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--steps", type=int, default=20)
    sub = p.add_subparsers(dest="mode", required=True)
    lm = sub.add_parser("lm")
    lm.add_argument("--layers", type=int, default=16)
    lm.add_argument("--bucket-mb", type=float, default=1.0)
    sub.add_parser("hooks").add_argument("--params", type=int, default=2000)
    args = p.parse_args()
    if args.mode == "hooks":
        hooks(args)
    else:
        from cs336_systems.dist_utils import spawn

        spawn(lm_worker, 2, args, timeout_s=1800)


if __name__ == "__main__":
    main()
