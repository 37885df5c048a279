"""Pretrain a small TransformerLM on generated arithmetic word problems, SFT it, then
GRPO it, and report held-out accuracy after each stage (no downloads).

Writes to --out: pretrain/, sft/, grpo/ (each with metrics.jsonl and curves.png; sft
and grpo with generations.jsonl and final/), pipeline.png and summary.json.

Example:
  cs336-alignment demo --preset cpu --out runs/demo
"""

from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", required=True, help="output folder (must not hold a run)")
    p.add_argument("--preset", choices=("test", "cpu", "gpu"), default="cpu",
                   help="size: test (seconds), cpu (minutes), gpu (the reported run); "
                   "default %(default)s")  # fmt: skip
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, mps")


def run(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from cs336_common.checks import check_output
    from cs336_common.device import resolve_device
    from cs336_common.errors import InputError

    out = check_output(args.out, directory=True)
    taken = [n for n in ("summary.json", "pretrain") if (Path(out) / n).exists()]
    if taken:  # a demo run, or another tool's file of that name: neither is replaced
        raise InputError(f"--out {out} already holds {taken[0]}; choose a new folder")
    from cs336_alignment.demo import run_demo

    summary = run_demo(args.preset, Path(out), resolve_device(args.device))
    print(json.dumps({k: summary[k] for k in ("results", "timings")}, indent=1))
    return 0
