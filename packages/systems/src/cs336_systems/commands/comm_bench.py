"""All-reduce latency and bus bandwidth across message sizes, backends and world sizes.

Without torchrun it starts its own ranks on this machine, one set per backend and world
size (gloo: CPU tensors; nccl: one GPU per rank). Under torchrun it measures the one
group torchrun made (``--backend``, world size from the environment):

    cs336-systems comm-bench --backend gloo nccl --world-size 2 4 --out runs/comm
    torchrun --nproc_per_node 2 -m cs336_systems.cli comm-bench --backend nccl --out runs/comm

Latency is the mean over ``--iters`` timed all-reduces, each waited for, taking the
slowest rank. Bus bandwidth follows nccl-tests: ``size / latency * 2 (n-1) / n``, the
rate each link carries in a ring all-reduce, comparable across world sizes. Writes a
Markdown table (printed), ``comm_bench.csv`` and ``comm_bench.png`` to ``--out``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from cs336_common.cli import non_negative_int, positive_float, positive_int


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--backend", nargs="+", default=["gloo"], choices=["gloo", "nccl"])
    p.add_argument(
        "--world-size",
        nargs="+",
        type=positive_int,
        default=[2],
        metavar="N",
        help="ranks per run (ignored under torchrun)",
    )
    p.add_argument(
        "--sizes-mib",
        nargs="+",
        type=positive_float,
        default=[2.0**i for i in range(11)],
        metavar="MIB",
        help="float32 message sizes in MiB (default 1 2 4 ... 1024)",
    )
    p.add_argument("--warmup", type=non_negative_int, default=3)
    p.add_argument("--iters", type=positive_int, default=10)
    p.add_argument(
        "--timeout",
        type=positive_float,
        default=600.0,
        help="seconds per run before its ranks are killed",
    )
    p.add_argument("--out", type=Path, default=Path("runs/comm_bench"))


def run(args: argparse.Namespace) -> int:
    from cs336_systems.bench.comm import measure_all_reduce, write_comm_report
    from cs336_systems.dist_utils import run_collective, under_torchrun

    _check(args)
    # under torchrun: one group, torchrun's world size; else one set of ranks per pair
    runs = (
        [(args.backend[0], 0)]
        if under_torchrun()
        else [(backend, world) for backend in args.backend for world in args.world_size]
    )
    rows: list[dict] = []
    for backend, world in runs:
        got = run_collective(measure_all_reduce, args, world, backend, args.timeout)
        if got is None:  # a torchrun rank other than 0
            return 0
        rows += got
    write_comm_report(rows, args.out)
    return 0


def _check(args: argparse.Namespace) -> None:
    from cs336_common.checks import check_output
    from cs336_common.errors import UsageError, UserError
    from cs336_systems.dist_utils import check_backend, under_torchrun

    check_output(args.out, directory=True)
    if (small := min(args.sizes_mib)) * 2**20 < 4:
        raise UserError(f"--sizes-mib {small:g}: less than one float32 (4 bytes)")
    if under_torchrun() and len(args.backend) > 1:
        raise UsageError(
            f"--backend {' '.join(args.backend)}: torchrun made one group, give one backend"
        )
    for backend in args.backend:
        check_backend(backend, max(args.world_size))
