"""All-reduce latency and bus bandwidth (the `cs336-systems comm-bench` measurement).

Latency is the mean over ``iters`` timed all-reduces, each waited for, taking the
slowest rank. Bus bandwidth follows nccl-tests: ``size / latency * 2 (n-1) / n``, the
rate each link carries in a ring all-reduce, comparable across world sizes.
"""

from __future__ import annotations

import argparse
from pathlib import Path

_MIB = 2**20


def measure_all_reduce(args: argparse.Namespace) -> list[dict]:
    """Rows of (backend, world, size, latency, bandwidths); collective over the group."""
    import time

    import torch
    import torch.distributed as dist
    from tqdm import tqdm

    from cs336_common.device import synchronize
    from cs336_systems.dist_utils import current_device

    device = current_device()
    world, backend = dist.get_world_size(), dist.get_backend()
    rows = []
    sizes = args.sizes_mib
    for size_mib in tqdm(
        sizes, desc=f"all-reduce {backend} x{world}", disable=dist.get_rank() != 0
    ):
        x = torch.randn(int(size_mib * _MIB) // 4, device=device)
        times = []
        for i in range(args.warmup + args.iters):
            synchronize(device)
            dist.barrier()
            t0 = time.perf_counter()
            dist.all_reduce(x)
            synchronize(device)
            if i >= args.warmup:
                times.append(time.perf_counter() - t0)
        latency = torch.tensor(sum(times) / len(times), dtype=torch.float64, device=device)
        dist.all_reduce(latency, op=dist.ReduceOp.MAX)  # the slowest rank decides
        seconds = latency.item()
        nbytes = x.numel() * x.element_size()
        rows.append(
            {
                "backend": backend,
                "world_size": world,
                "size_mib": size_mib,
                "latency_ms": seconds * 1e3,
                "algbw_gbps": nbytes / seconds / 1e9,
                "busbw_gbps": nbytes / seconds / 1e9 * 2 * (world - 1) / world,
            }
        )
        del x
    return rows


def write_comm_report(rows: list[dict], out: Path) -> None:
    from cs336_common.io import atomic_path
    from cs336_systems.bench.harness import markdown_table, write_csv

    print(markdown_table(rows))
    write_csv(out / "comm_bench.csv", rows)
    with atomic_path(out / "comm_bench.png") as tmp:
        _plot(rows, tmp)
    print(f"wrote {out / 'comm_bench.csv'} and {out / 'comm_bench.png'}")


def _plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_lat, ax_bw) = plt.subplots(1, 2, figsize=(11, 4))
    runs = sorted({(r["backend"], r["world_size"]) for r in rows})
    for backend, world in runs:
        rs = [r for r in rows if (r["backend"], r["world_size"]) == (backend, world)]
        sizes = [r["size_mib"] for r in rs]
        label = f"{backend}, {world} ranks"
        ax_lat.plot(sizes, [r["latency_ms"] for r in rs], "o-", label=label)
        ax_bw.plot(sizes, [r["busbw_gbps"] for r in rs], "o-", label=label)
    for ax, ylabel in ((ax_lat, "latency (ms)"), (ax_bw, "bus bandwidth (GB/s)")):
        ax.set_xscale("log", base=2)
        ax.set_xlabel("message size (MiB, float32)")
        ax.set_ylabel(ylabel)
        ax.grid(True, alpha=0.3)
        ax.legend()
    ax_lat.set_yscale("log")
    fig.suptitle("all-reduce")
    fig.tight_layout()
    fig.savefig(path, format="png", dpi=120)
    plt.close(fig)
