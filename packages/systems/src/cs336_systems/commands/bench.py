"""Benchmarks of the LM and of attention; each writes <out>/<name>.md and .csv.

  model      forward / forward+backward / AdamW step times over the course's size table
  memory     peak memory of a forward and a training step + a memory-history .pickle
  attention  naive vs torch.compile vs FlashAttention-2 over the course's (d, seq) grid
  flash      the FlashAttention-2 leaderboard case and the full sweep (Triton on CUDA)
  precision  the mixed-precision accumulation demo

`--smoke` shrinks any of them to seconds on a CPU (a test of the code path, not a number).
Nsight Systems: `nsys profile -t cuda,nvtx -o lm cs336-systems bench model --nvtx ...`.
"""

from __future__ import annotations

import argparse

from cs336_common.cli import non_negative_int, positive_int


def _ints(text: str) -> tuple[int, ...]:
    """Comma-separated integers >= 1, e.g. ``128,256``."""
    try:
        values = tuple(int(x) for x in text.split(","))
    except ValueError:
        values = ()
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected integers >= 1 like 128,256, got {text!r}")
    return values


def _names(text: str) -> tuple[str, ...]:
    return tuple(x.strip() for x in text.split(",") if x.strip())


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="bench", metavar="BENCH", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--out", default="bench_results", help="output folder")
    common.add_argument("--device", default="auto", help="auto | cuda | cpu")
    common.add_argument("--smoke", action="store_true", help="tiny sizes, runs on a CPU")
    common.add_argument("--no-progress", action="store_true")

    lm = argparse.ArgumentParser(add_help=False)
    lm.add_argument("--sizes", type=_names, default=("small", "medium", "large", "xl", "2.7b"))
    lm.add_argument("--context-lengths", type=_ints, default=(128, 256, 512, 1024))
    lm.add_argument("--batch-size", type=positive_int, default=4)
    lm.add_argument("--vocab-size", type=positive_int, default=10_000)
    lm.add_argument("--warmup", type=non_negative_int, default=5)
    lm.add_argument("--steps", type=positive_int, default=10)
    lm.add_argument("--dtype", choices=("fp32", "bf16"), default="fp32", help="bf16 = autocast")
    lm.add_argument("--attention", choices=("naive", "torch", "flash"), default="naive")
    lm.add_argument("--compile", action="store_true", help="torch.compile the model")

    p = sub.add_parser("model", parents=[common, lm], help="LM step times")
    p.add_argument("--nvtx", action="store_true", help="NVTX ranges for Nsight Systems")
    sub.add_parser("memory", parents=[common, lm], help="LM peak memory and a snapshot")

    p = sub.add_parser("attention", parents=[common], help="naive vs compiled vs flash")
    p.add_argument("--head-dims", type=_ints, default=(16, 32, 64, 128))
    p.add_argument("--seq-lens", type=_ints, default=(256, 1024, 4096, 8192, 16384))
    p.add_argument("--batch-size", type=positive_int, default=8)
    p.add_argument("--impls", type=_names, default=("naive", "compiled", "flash"))
    p.add_argument("--dtype", choices=("fp32", "bf16"), default="fp32")
    p.add_argument("--warmup", type=non_negative_int, default=5)
    p.add_argument("--steps", type=positive_int, default=100)

    p = sub.add_parser(
        "flash",
        parents=[common],
        help="FlashAttention-2 vs every SDPA backend: leaderboard + sweep",
    )
    p.add_argument(
        "--part",
        choices=("leaderboard", "sweep", "both"),
        default="both",
        help="leaderboard: (16, 16384, 64) bf16 causal, with max abs errors vs float64; "
        "sweep: the course's grid, ours vs the default SDPA (default: both)",
    )
    p.add_argument("--rounds", type=positive_int, default=5, help="interleaved leaderboard rounds")
    p.add_argument("--seq-lens", type=_ints, default=tuple(2**i for i in range(7, 17)))
    p.add_argument("--head-dims", type=_ints, default=(16, 32, 64, 128))
    p.add_argument("--dtypes", type=_names, default=("bf16", "fp32"))

    sub.add_parser("precision", parents=[common], help="fp32/fp16/bf16 accumulation demo")


def run(args: argparse.Namespace) -> int:
    import torch

    from cs336_common.checks import check_output
    from cs336_common.device import resolve_device
    from cs336_systems.bench.harness import device_description, write_results

    check_output(args.out, directory=True)
    device = resolve_device("cpu" if args.smoke and args.device == "auto" else args.device)
    args.device = str(device)
    progress = not args.no_progress
    header = f"Device: {device_description(device)}."
    if device.type == "cuda":
        # fp32 attention/matmuls use TF32 tensor cores, as is usual for benchmarks
        torch.set_float32_matmul_precision("high")
    results = _RUNNERS[args.bench](args, progress)
    for name, (rows, note) in results.items():
        path = write_results(rows, args.out, name, f"{header} {note}".strip())
        print(path.read_text(encoding="utf-8"))
    return 0


def _model_config(args):
    from cs336_systems.bench.model import ModelBenchConfig

    if args.smoke:
        args.sizes, args.context_lengths, args.batch_size = ("tiny",), (32,), 2
        args.vocab_size, args.warmup, args.steps = 256, 1, 2
    return ModelBenchConfig(
        sizes=args.sizes,
        context_lengths=args.context_lengths,
        batch_size=args.batch_size,
        vocab_size=args.vocab_size,
        warmup=args.warmup,
        steps=args.steps,
        dtype=args.dtype,
        compile=args.compile,
        attention=args.attention,
        nvtx=getattr(args, "nvtx", False),
        device=args.device,
    )


def _run_model(args, progress):
    from cs336_systems.bench.model import bench_model

    cfg = _model_config(args)
    return {"model": (bench_model(cfg, progress), f"Batch {cfg.batch_size}, ms mean ± std.")}


def _run_memory(args, progress):
    from cs336_systems.bench.memory import bench_memory

    cfg = _model_config(args)
    return {"memory": (bench_memory(cfg, args.out, progress), f"Batch {cfg.batch_size}.")}


def _run_attention(args, progress):
    from cs336_systems.bench.attention import AttentionBenchConfig, bench_attention

    if args.smoke:
        args.head_dims, args.seq_lens, args.batch_size = (16,), (64,), 2
        args.impls, args.warmup, args.steps = ("naive", "flash"), 1, 2
    cfg = AttentionBenchConfig(
        head_dims=args.head_dims,
        seq_lens=args.seq_lens,
        batch_size=args.batch_size,
        impls=args.impls,
        dtype=args.dtype,
        warmup=args.warmup,
        steps=args.steps,
        device=args.device,
    )
    note = f"Batch {cfg.batch_size}, one head, causal, {cfg.dtype}; ms mean ± std of {cfg.steps}."
    return {"attention": (bench_attention(cfg, progress), note)}


def _run_flash(args, progress):
    from cs336_common.device import resolve_device
    from cs336_systems.bench.flash import errors, leaderboard, sweep

    device = resolve_device(args.device)
    results = {}
    if args.part in ("leaderboard", "both"):
        shape = dict(batch=2, seq=128, d=16, rounds=1) if args.smoke else {"rounds": args.rounds}
        rows, peak, default = leaderboard(device, progress=progress, **shape)
        results["flash_leaderboard"] = (rows, (
            f"Causal. PyTorch's default SDPA dispatches to {default} here. Median ms over "
            f"{shape['rounds']} interleaved rounds (each the median of do_bench on CUDA), "
            f"[min, max] over rounds. Dense bf16 matmul measured: {peak:.0f} TFLOP/s."
        ))  # fmt: skip
        small = dict(batch=1, seq=64, d=16) if args.smoke else {}
        results["flash_errors"] = (errors(device, **small), "Causal; vs float64 attention.")
    if args.part in ("sweep", "both"):
        if args.smoke:
            args.seq_lens, args.head_dims, args.dtypes = (64,), (16,), ("fp32",)
        rows = sweep(device, args.seq_lens, args.head_dims, args.dtypes, progress=progress)
        results["flash_sweep"] = (rows, "Batch 1, causal; median ms (do_bench on CUDA).")
    return results


def _run_precision(args, progress):
    from cs336_systems.bench.precision import accumulation_table

    return {"precision": (accumulation_table(), "Sum of 1000 additions of 0.01.")}


_RUNNERS = {
    "model": _run_model,
    "memory": _run_memory,
    "attention": _run_attention,
    "flash": _run_flash,
    "precision": _run_precision,
}
