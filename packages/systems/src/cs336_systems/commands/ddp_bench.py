"""Training-step time of each data-parallel variant, split into compute and
communication, with peak memory per rank.

Meant for torchrun (one GPU per rank, NCCL); without torchrun it starts
``--world-size`` ranks itself (gloo on CPU unless ``--backend nccl``):

    torchrun --nproc_per_node 2 -m cs336_systems.cli ddp-bench --model xl --variant all
    cs336-systems ddp-bench --model tiny --world-size 2 --steps 2      # CPU smoke run

What each variant is and how rounds are summarised: `cs336_systems.bench.ddp`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from cs336_common.cli import non_negative_int, positive_float, positive_int
from cs336_systems.bench.ddp import NCCL_ONLY, VARIANTS  # no torch import: --help stays fast


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--variant", nargs="+", default=["all"], choices=["all", *VARIANTS])
    p.add_argument(
        "--model",
        default="xl",
        help="a preset (tiny, small, ..., 2.7b), a model config file or a run directory",
    )
    p.add_argument("--context-length", type=positive_int, default=512)
    p.add_argument("--batch-size", type=positive_int, default=4, help="sequences per rank")
    p.add_argument(
        "--dtype",
        default="bf16",
        choices=["bf16", "fp32"],
        help="bf16: fp32 weights, bf16 autocast; fp32: TF32 matmuls on GPU",
    )
    p.add_argument(
        "--bucket-mb",
        type=positive_float,
        default=25.0,
        help="MiB per bucket (bucketed, torch, torch-default, sharded)",
    )
    p.add_argument("--warmup", type=non_negative_int, default=3)
    p.add_argument("--steps", type=positive_int, default=5)
    p.add_argument(
        "--world-size", type=positive_int, default=2, help="ranks to start without torchrun"
    )
    p.add_argument(
        "--rounds", type=positive_int, default=3, help="interleaved rounds of every variant"
    )
    p.add_argument(
        "--backend",
        choices=["gloo", "nccl"],
        default=None,
        help="default: nccl if CUDA is available, else gloo",
    )
    p.add_argument("--timeout", type=positive_float, default=1800.0)
    p.add_argument("--out", type=Path, default=Path("runs/ddp_bench"))


def run(args: argparse.Namespace) -> int:
    from cs336_common.checks import check_output
    from cs336_common.errors import UsageError
    from cs336_systems.bench.ddp import bench_ddp, model_config, write_ddp_report
    from cs336_systems.dist_utils import check_backend, default_backend, run_collective

    check_output(args.out, directory=True)
    model_config(args)  # fail early on a bad --model
    backend = args.backend or default_backend()
    check_backend(backend, args.world_size)
    if "all" in args.variant:
        args.variant = [v for v in VARIANTS if backend == "nccl" or v not in NCCL_ONLY]
    elif backend != "nccl" and (bad := set(args.variant) & set(NCCL_ONLY)):
        raise UsageError(f"--variant {' '.join(sorted(bad))} needs --backend nccl")
    rows = run_collective(bench_ddp, args, args.world_size, backend, args.timeout)
    if rows is None:  # a torchrun rank other than 0
        return 0
    write_ddp_report(rows, args)
    return 0
