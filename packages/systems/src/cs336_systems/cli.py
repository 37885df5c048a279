"""`cs336-systems`: Benchmarking, FlashAttention-2 in Triton, and distributed training (CS336 assignment 2)."""

from __future__ import annotations

from collections.abc import Sequence

from cs336_common.cli import run_cli

COMMANDS = {
    "about": ("cs336_common.about", "version, summary and status of this package"),
    "bench": ("cs336_systems.commands.bench", "benchmarks: model|memory|attention|flash|precision"),
    "comm-bench": ("cs336_systems.commands.comm_bench", "all-reduce latency and bus bandwidth"),
    "ddp-bench": (
        "cs336_systems.commands.ddp_bench",
        "DDP/ZeRO/FSDP step time, comm split, memory",
    ),
}


def main(argv: Sequence[str] | None = None) -> int:
    return run_cli("cs336-systems", __doc__, COMMANDS, argv)


if __name__ == "__main__":
    raise SystemExit(main())
