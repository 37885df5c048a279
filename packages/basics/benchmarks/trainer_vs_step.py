"""`cs336-basics train` against the bare training step of `bench_train_step.py`, on one
GPU, same model (the tinystories config: vocab 10k, context 256, d_model 512, 4 layers)
and batch (128), in one run:

  bench (g)   ours, tuned: bf16, TF32, torch.compile, our FlashAttention (the
              tinystories config's attention_backend = "flash"), AdamW(compile=True),
              one fixed batch already on the GPU, no clipping, no logging
  train       `python3 -m cs336_basics.cli train tinystories` with compile = true,
              cuda_graphs = false, fused_loss = false: the same step as (g)
  bench (i)   (g) + CUDA graphs + the fused LM head and loss
  shipped     `cs336-basics train tinystories` as shipped (compile, cuda_graphs,
              fused_loss): the same step as (i)

The trainer reads a synthetic token file (20M ids, written first; a learnable pattern,
so the two trainer runs' losses can be compared) and does everything a run does:
sampling, warmup + cosine lr, gradient clipping, two AdamW groups, a metrics row every
20 steps, an evaluation and a checkpoint at steps 500 and 1000. Its speed is measured at
steady state from metrics.jsonl: tokens over wall-clock time between logged rows after
step 200, leaving out the intervals that hold an evaluation or a checkpoint (the logging
itself is inside). The bench's step: 10 warm-up steps, then 300 timed. MFU for both:
3 x forward FLOPs per token x tokens/s / the card's dense bf16 peak (989 TFLOP/s for
H100/H200). Rounds are interleaved (bench, train, shipped, then again).
``--pairs shipped`` runs only the shipped config and (i).

  PYTHONPATH=shared/src:packages/basics/src python3 packages/basics/benchmarks/trainer_vs_step.py
  python3 packages/basics/benchmarks/trainer_vs_step.py --device cpu --tiny   # check the script

The table goes to stdout and, when $OUT is set, to $OUT/trainer_vs_step.md (with the
raw numbers in trainer_vs_step.json and each trainer run's metrics.jsonl).
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]
H100_BF16_PEAK = 989e12  # FLOP/s, dense; also what the bench uses off-GPU
# trainer run: (its --set overrides of the shipped config, its bench variant)
PAIRS = {
    "train": (["--set", "cuda_graphs=false", "--set", "fused_loss=false"], "g"),
    "shipped": ([], "i"),
}


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--device", default="cuda")
    p.add_argument("--tiny", action="store_true", help="a tiny model and run, to check the script")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--tokens", type=int, default=20_000_000, help="ids in the token file")
    p.add_argument("--steps", type=int, default=1000, help="trainer steps per run")
    p.add_argument("--skip", type=int, default=200, help="trainer steps left out as warm-up")
    p.add_argument(
        "--budget-s", type=float, default=420, help="start no round that would end past this"
    )
    p.add_argument(
        "--pairs", default="train,shipped", help="trainer runs to pair with their bench step"
    )
    p.add_argument("--bench-child", help=argparse.SUPPRESS)  # internal: run bench variants
    args = p.parse_args()
    if args.tiny:
        args.tokens, args.steps, args.skip = 50_000, 60, 20
    if args.bench_child:
        return _bench_child(args)
    out = Path(os.environ["OUT"]) if os.environ.get("OUT") else None
    work = Path(tempfile.mkdtemp(prefix="trainer_vs_step_"))
    try:
        _run(args, work, out)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _run(args, work: Path, out: Path | None) -> None:
    pairs = [name.strip() for name in args.pairs.split(",")]
    unknown = sorted(set(pairs) - set(PAIRS))
    if unknown:
        sys.exit(f"--pairs: unknown {', '.join(unknown)}; choose from {', '.join(PAIRS)}")
    variants = "".join(PAIRS[name][1] for name in pairs)
    config = _write_inputs(args, work)
    results: dict[str, list[dict]] = {}
    start = time.perf_counter()
    for r in range(args.rounds):
        elapsed = time.perf_counter() - start
        if r and elapsed / r + elapsed > args.budget_s:
            print(f"== stopping after {r} rounds: another would pass --budget-s", flush=True)
            break
        print(f"== round {r + 1} of {args.rounds}", flush=True)
        for row in _bench(args, variants):
            results.setdefault(row["name"], []).append(row)
            print(f"  bench ({row['name']}): {row['tokens_per_s']:,.0f} tokens/s", flush=True)
        for name in pairs:
            row = _train(args, work, config, name, PAIRS[name][0], r, out)
            results.setdefault(name, []).append(row)
            print(f"  {name}: {_fmt(row.get('tokens_per_s'))} tokens/s", flush=True)
        table = _table(args, results, pairs, r + 1)
        if out is not None:  # after every round: a run cut short still leaves its table
            out.mkdir(parents=True, exist_ok=True)
            (out / "trainer_vs_step.md").write_text(table + "\n")
            (out / "trainer_vs_step.json").write_text(json.dumps(results, indent=1) + "\n")
    print()
    print(table)


# ---- inputs ---------------------------------------------------------------------------


def _write_inputs(args, work: Path) -> Path:
    """Token files (a learnable stream: next id = id + 1 or + 2) and the run's config:
    the shipped tinystories config on them, as JSON (the CLI reads JSON configs too)."""
    import numpy as np

    from cs336_basics.train_config import load_train_config
    from cs336_common.nn import load_model_config
    from cs336_common.train.token_file import save_token_file

    config = load_train_config("tinystories").to_dict()
    if args.tiny:
        config["model"] = dataclasses.asdict(load_model_config("tiny"))
        config["batch_size"] = 4
    vocab = config["model"]["vocab_size"]
    rng = np.random.default_rng(0)
    for name, n in (("train.bin", args.tokens), ("valid.bin", max(args.tokens // 50, 10_000))):
        save_token_file(work / name, np.cumsum(rng.choice([1, 1, 1, 2], size=n)) % vocab, vocab)
    config.update(
        train_data=str(work / "train.bin"),
        val_data=str(work / "valid.bin"),
        tokenizer=None,
        device=args.device,
        eval_batches=2,
        eval_every=args.steps // 2,
        checkpoint_every=args.steps // 2,
        log_every=20 if not args.tiny else 5,
    )
    path = work / "config.json"
    path.write_text(json.dumps(config, indent=1))
    return path


# ---- the bench step ---------------------------------------------------------------------


def _bench(args, variants: str) -> list[dict]:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--bench-child", variants]
    cmd += ["--device", args.device] + (["--tiny"] if args.tiny else [])
    proc = subprocess.run(cmd, env=_env(), capture_output=True, text=True)
    if proc.returncode != 0:
        print(proc.stdout + proc.stderr[-4000:], flush=True)
        return [dict(name=v, tokens_per_s=float("nan")) for v in variants]
    return [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]


def _bench_child(args) -> None:
    import bench_train_step  # next to this file (the script's folder is on sys.path)
    import torch

    from cs336_common.nn import load_model_config

    device = torch.device(args.device)
    cfg = load_model_config("tiny" if args.tiny else "tinystories")
    batch, warmup, steps = (4, 2, 10) if args.tiny else (128, 10, 300)
    for name in args.bench_child:
        row = bench_train_step.measure(name, cfg, device, batch, warmup, steps)
        print(json.dumps(dict(name=name, tokens_per_s=row["tokens_per_s"])), flush=True)


# ---- the trainer --------------------------------------------------------------------------


def _train(args, work: Path, config: Path, name: str, extra: list[str], r: int, out) -> dict:
    run_dir = work / f"run_{r}_{name}"
    cmd = [sys.executable, "-m", "cs336_basics.cli", "train", str(config), "--no-progress"]
    cmd += ["--set", f"out_dir={run_dir}", "--set", f"max_steps={args.steps}", *extra]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=_env(), capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        print(f"  {name} failed (exit {proc.returncode}):\n{proc.stderr[-4000:]}", flush=True)
        return dict(name=name, process_s=seconds)
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        slug = name.replace(" + ", "_").replace(" ", "_")
        shutil.copy(run_dir / "metrics.jsonl", out / f"metrics_{slug}_round{r + 1}.jsonl")
    every = args.steps // 2
    return dict(
        name=name,
        tokens_per_s=_steady_speed(rows, args.skip, every),
        process_s=seconds,
        printed=proc.stdout.strip().splitlines()[-1],
        losses={r["step"]: r["train_loss"] for r in rows},
        val_loss=rows[-1]["val_loss"],
    )


def _steady_speed(rows: list[dict], skip: int, every: int) -> float:
    """Tokens over wall-clock seconds between consecutive rows after step ``skip``, but
    for intervals that begin with an evaluation or checkpoint (rows at multiples of
    ``every``)."""
    tokens = seconds = 0.0
    for prev, row in itertools.pairwise(rows):
        if prev["step"] < skip or prev["step"] % every == 0:
            continue
        tokens += row["tokens"] - prev["tokens"]
        seconds += row["wall_time_s"] - prev["wall_time_s"]
    return tokens / seconds if seconds else float("nan")


def _env() -> dict:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    paths = [str(ROOT / "shared/src"), str(ROOT / "packages/basics/src")]
    env["PYTHONPATH"] = os.pathsep.join([*paths, env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return env


# ---- the table --------------------------------------------------------------------------


def _table(args, results: dict[str, list[dict]], pairs: list[str], rounds: int) -> str:
    import torch

    from cs336_common.device import peak_flops
    from cs336_common.nn import flops_per_token, load_model_config

    device = torch.device(args.device)
    cfg = load_model_config("tiny" if args.tiny else "tinystories")
    peak = peak_flops(device, "bf16") or H100_BF16_PEAK
    flops = 3 * flops_per_token(cfg)["total"]
    hardware = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    speeds = {k: [row.get("tokens_per_s", float("nan")) for row in v] for k, v in results.items()}
    lines = [
        f"{hardware}, torch {torch.__version__}, {rounds} interleaved round(s); trainer: "
        f"{args.steps} steps, speed after step {args.skip}",
        "",
        "| run | tokens/s (each round) | median | MFU | vs its bench step (each round) |",
        "|---|---:|---:|---:|---:|",
    ]
    labels = {
        "g": "bench (g): compiled, our FlashAttention",
        "train": "`cs336-basics train`, compile only (vs g)",
        "i": "bench (i): (g) + CUDA graphs + fused LM head and loss",
        "shipped": "`cs336-basics train`, the tinystories config as shipped (vs i)",
    }
    for trainer in pairs:
        bench = PAIRS[trainer][1]
        for name in (bench, trainer):
            s = speeds.get(name, [])
            med = statistics.median(s) if s else float("nan")
            ratios = ""
            if name == trainer:
                each = [a / b for a, b in zip(s, speeds.get(bench, []), strict=False)]
                ratios = ", ".join(f"{x:.3f}" for x in each)
                if len(each) > 1:
                    ratios += f" (median {statistics.median(each):.3f})"
            lines.append(
                f"| {labels[name]} | {', '.join(_fmt(x) for x in s)} | {_fmt(med)} | "
                f"{med * flops / peak:.1%} | {ratios} |"
            )
    return "\n".join([*lines, "", *_checks(results, pairs)])


def _checks(results: dict[str, list[dict]], pairs: list[str]) -> list[str]:
    """What each trainer run printed last; with both runs, their losses, which agree but
    for bf16 rounding (same batches, same initialisation: a CUDA-graph or fused-loss bug
    would show here)."""
    lines = []
    for r in range(max(len(results.get(name, [])) for name in pairs)):
        runs = [results[name][r] for name in pairs if r < len(results.get(name, []))]
        done = [run for run in runs if "losses" in run]
        for run in done:
            lines.append(
                f"round {r + 1}, {run['name']}: final train loss "
                f"{list(run['losses'].values())[-1]:.4f}, val loss {run['val_loss']:.4f}, "
                f"process {run['process_s']:.0f} s; printed: {run['printed']}"
            )
        if len(done) == 2:
            a, b = (run["losses"] for run in done)
            diff = max(abs(a[s] - b[s]) for s in a)
            lines.append(f"round {r + 1}: max |train loss difference| over the rows {diff:.4f}")
    return lines


def _fmt(x) -> str:
    return "n/a" if x is None or x != x else f"{x:,.0f}"


if __name__ == "__main__":
    main()
