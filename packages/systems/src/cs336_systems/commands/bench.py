"""Benchmarks of the LM and of attention; each writes <out>/<name>.md and .csv.

  model      forward / forward+backward / AdamW step times over the course's size table
  memory     peak memory of a forward and a training step + a memory-history .pickle
  attention  naive vs torch.compile vs FlashAttention-2 over the course's (d, seq) grid
  flash      the FlashAttention-2 leaderboard case and the full sweep (Triton on CUDA)
  precision  the mixed-precision accumulation demo

`--smoke` shrinks any of them to seconds on a CPU (a test of the code path, not a number);
a size flag given with it still counts. memory and flash measure CUDA only: on another
device they need --smoke.
Nsight Systems: `nsys profile -t cuda,nvtx -o lm cs336-systems bench model --nvtx ...`.
"""

from __future__ import annotations

import argparse
import functools

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


def _names(text: str, choices: tuple[str, ...] = ()) -> tuple[str, ...]:
    """Comma-separated names, at least one (each one of ``choices`` when given)."""
    names = tuple(x.strip() for x in text.split(",") if x.strip())
    if not names:
        raise argparse.ArgumentTypeError(f"expected comma-separated names, got {text!r}")
    if choices and (bad := [n for n in names if n not in choices]):
        raise argparse.ArgumentTypeError(
            f"expected some of {','.join(choices)}, got {','.join(bad)}"
        )
    return names


def _show(value) -> str:
    return ",".join(map(str, value)) if isinstance(value, tuple) else str(value)


def _sized(parser, flag: str, full, smoke, type, help: str = "") -> None:
    """A flag whose default --smoke shrinks (a value given on the command line wins)."""
    dest = flag.removeprefix("--").replace("-", "_")
    default = f"default {_show(full)}; with --smoke {_show(smoke)}"
    parser.add_argument(
        flag, type=type, default=None, help=f"{help}; {default}" if help else default
    )
    parser.set_defaults(_sizes={**(parser.get_default("_sizes") or {}), dest: (full, smoke)})


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="bench", metavar="BENCH", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--out", default="bench_results", help="output folder")
    common.add_argument("--device", default="auto", help="auto | cuda | cpu")
    common.add_argument(
        "--smoke",
        action="store_true",
        help="the small defaults below, on the CPU unless --device says otherwise: seconds",
    )
    common.add_argument("--no-progress", action="store_true")

    lm = argparse.ArgumentParser(add_help=False)
    sizes = ("small", "medium", "large", "xl", "2.7b")
    _sized(lm, "--sizes", sizes, ("tiny",), _names, "presets, config files or run folders")
    _sized(lm, "--context-lengths", (128, 256, 512, 1024), (32,), _ints)
    _sized(lm, "--batch-size", 4, 2, positive_int)
    _sized(lm, "--vocab-size", 10_000, 256, positive_int)
    _sized(lm, "--warmup", 5, 1, non_negative_int)
    _sized(lm, "--steps", 10, 2, positive_int)
    lm.add_argument("--dtype", choices=("fp32", "bf16"), default="fp32", help="bf16 = autocast")
    lm.add_argument("--attention", choices=("naive", "torch", "flash"), default="naive")
    lm.add_argument("--compile", action="store_true", help="torch.compile the model")

    p = sub.add_parser("model", parents=[common, lm], help="LM step times")
    p.add_argument("--nvtx", action="store_true", help="NVTX ranges for Nsight Systems (CUDA)")
    sub.add_parser("memory", parents=[common, lm], help="LM peak memory and a snapshot (CUDA)")

    p = sub.add_parser("attention", parents=[common], help="naive vs compiled vs flash")
    _sized(p, "--head-dims", (16, 32, 64, 128), (16,), _ints)
    _sized(p, "--seq-lens", (256, 1024, 4096, 8192, 16384), (64,), _ints)
    _sized(p, "--batch-size", 8, 2, positive_int)
    _sized(p, "--impls", ("naive", "compiled", "flash"), ("naive", "flash"), _names)
    p.add_argument("--dtype", choices=("fp32", "bf16"), default="fp32")
    _sized(p, "--warmup", 5, 1, non_negative_int)
    _sized(p, "--steps", 100, 2, positive_int)

    p = sub.add_parser(
        "flash",
        parents=[common],
        help="FlashAttention-2 vs every SDPA backend: leaderboard + sweep (CUDA)",
    )
    p.add_argument(
        "--part",
        choices=("leaderboard", "sweep", "both"),
        default="both",
        help="leaderboard: (16, 16384, 64) bf16 causal, with max abs errors vs float64; "
        "sweep: the course's grid, ours vs the default SDPA (default: both)",
    )
    _sized(p, "--rounds", 5, 1, positive_int, "interleaved leaderboard rounds")
    _sized(p, "--seq-lens", tuple(2**i for i in range(7, 17)), (64,), _ints)
    _sized(p, "--head-dims", (16, 32, 64, 128), (16,), _ints)
    dtypes = functools.partial(_names, choices=("bf16", "fp32"))
    _sized(p, "--dtypes", ("bf16", "fp32"), ("fp32",), dtypes)

    sub.add_parser("precision", parents=[common], help="fp32/fp16/bf16 accumulation demo")


def run(args: argparse.Namespace) -> int:
    from cs336_common.checks import check_output
    from cs336_common.device import resolve_device, tf32_matmuls
    from cs336_systems.bench.harness import device_description, write_results

    check_output(args.out, directory=True)
    device = resolve_device("cpu" if args.smoke and args.device == "auto" else args.device)
    args.device = str(device)
    for dest, (full, smoke) in getattr(args, "_sizes", {}).items():
        if getattr(args, dest) is None:  # not given: the default, or --smoke's
            setattr(args, dest, smoke if args.smoke else full)
    _check_device(args, device)
    progress = not args.no_progress
    header = f"Device: {device_description(device)}."
    with tf32_matmuls(device):  # fp32 attention/matmuls on TF32, as is usual for benchmarks
        results = _RUNNERS[args.bench](args, progress)
    for name, (rows, note) in results.items():
        path = write_results(rows, args.out, name, f"{header} {note}".strip())
        print(path.read_text(encoding="utf-8"))
    return 0


def _check_device(args, device) -> None:
    """What the device cannot do is refused before any work: what only CUDA measures, and
    torch.compile on the CPU (it builds C++) without a C++ compiler."""
    from cs336_common.errors import UserError
    from cs336_systems.bench.harness import has_cpp_compiler

    if device.type == "cuda":
        return
    compiles = getattr(args, "compile", False) or "compiled" in getattr(args, "impls", ())
    if compiles and not has_cpp_compiler():
        raise UserError(
            f"torch.compile on the {device} needs a working C++ compiler (gcc or clang, "
            "or the one CXX names); none found"
        )
    if getattr(args, "nvtx", False):
        raise UserError(f"--nvtx: NVTX ranges mark CUDA work; the device is {device}")
    if args.bench in ("memory", "flash") and not args.smoke:
        raise UserError(
            f"bench {args.bench} measures CUDA; the device is {device} "
            "(--smoke runs its code path on the CPU)"
        )


def _model_config(args):
    from cs336_systems.bench.model import ModelBenchConfig

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
        shape = dict(batch=2, seq=128, d=16) if args.smoke else {}
        rows, peak, default = leaderboard(device, progress=progress, rounds=args.rounds, **shape)
        results["flash_leaderboard"] = (rows, (
            f"Causal. PyTorch's default SDPA dispatches to {default} here. Median ms over "
            f"{args.rounds} interleaved rounds (each the median of do_bench on CUDA), "
            f"[min, max] over rounds. Dense bf16 matmul measured: {peak:.0f} TFLOP/s."
        ))  # fmt: skip
        small = dict(batch=1, seq=64, d=16) if args.smoke else {}
        results["flash_errors"] = (errors(device, **small), "Causal; vs float64 attention.")
    if args.part in ("sweep", "both"):
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
