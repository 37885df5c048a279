"""Training throughput of a service run against `cs336-basics train`, same model, same data,
same GPU, side by side.

One configuration of the course's API (default d_model 512, 8 layers, 8 heads, batch 128,
context 512, 3e15 FLOPs: 303 steps) is trained twice:

* service: `cs336-scaling serve` (default settings: the course's ranges, context 512, the
  shipped fortunes tokens) answers `GET /loss`; the run is a submitit job, whose log
  prints tokens/s per logging interval;
* basics: `cs336-basics train` with a config file of the same model (the "scaling-api"
  architecture: learned positions, LayerNorm, GeLU MLP 4·d_model, dropout 0.1, untied),
  the same token file, steps, batch, learning rate and schedule (cosine to a tenth, no
  warm-up, weight decay 0.01, clipping 1.0); no validation; tokens/s from metrics.jsonl.

Steady state: the median tokens/s over the logging intervals after the first (warm-up),
with its spread. End to end: tokens / wall time of the whole run, start-up included
(service: the run's started -> finished times in the store; basics: the process).
Both CLIs run as subprocesses, so this package never imports cs336_basics.

    uv run python packages/scaling/benchmarks/service_throughput.py [--flops 3e15]
        [--json OUT.json]   # on a GPU; on CPU try --d-model 64 --layers 2 --heads 2
                            #   --flops 1e13 --context 64 (a tiny, slow check of the plumbing)
"""

import argparse
import json
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from cs336_scaling.client import ScalingClient
from cs336_scaling.settings import tokens_for
from cs336_scaling.trainer import default_token_file


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--d-model", type=int, default=512)
    ap.add_argument("--layers", type=int, default=8)
    ap.add_argument("--heads", type=int, default=8)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--context", type=int, default=512)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--flops", type=float, default=3e15)
    ap.add_argument("--timeout", type=float, default=600, help="seconds per run")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    config = dict(
        d_model=args.d_model,
        num_layers=args.layers,
        num_heads=args.heads,
        batch_size=args.batch,
        learning_rate=args.lr,
        train_flops=args.flops,
    )
    steps = max(1, round(tokens_for(config) / (args.batch * args.context)))
    tokens = steps * args.batch * args.context
    print(f"config {config}, context {args.context}: {steps} steps, {tokens:,} tokens", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        results = {
            "service": _service(tmp, config, args.context, args.timeout),
            "basics": _basics(tmp, config, args, steps),
        }
    for r in results.values():
        r["end_to_end_tok_s"] = tokens / r["wall_s"]
    _print(results, steps)
    if args.json is not None:
        args.json.write_text(json.dumps({"config": config, "steps": steps, **results}, indent=1))


def _service(tmp: Path, config: dict, context: int, timeout: float) -> dict:
    cli = [sys.executable, "-m", "cs336_scaling.cli"]
    state = tmp / "state"
    key = _run([*cli, "keys", "--state-dir", str(state), "create", "bench"]).strip()
    settings = tmp / "settings.json"
    settings.write_text(
        json.dumps({"context_length": context, "train_flops": [config["train_flops"]]})
    )
    server = subprocess.Popen(
        [*cli, "serve", "--state-dir", str(state), "--port", "0", "--settings", str(settings)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        url = "http://" + server.stdout.readline().split("http://")[1].split("/")[0]
        client = ScalingClient(url, key, timeout=timeout)
        t = time.perf_counter()
        answer = client.loss(**config)
        client_s = time.perf_counter() - t
        (run,) = client.runs()
    finally:
        server.terminate()
        server.wait()
    (log,) = (state / "jobs").glob("*_log.out")
    rates = [float(m.replace(",", "")) for m in re.findall(r"([\d,]+) tok/s", log.read_text())]
    return {
        "loss": answer["loss"],
        "wall_s": run["finished"] - run["started"],
        "client_s": client_s,
        **_steady(rates),
    }


def _basics(tmp: Path, config: dict, args, steps: int) -> dict:
    toml = tmp / "basics.toml"
    out = tmp / "basics_run"
    toml.write_text(
        f"""train_data = "{default_token_file()}"
out_dir = "{out}"
batch_size = {args.batch}
max_steps = {steps}
lr = {args.lr}
min_lr_ratio = 0.1
warmup_steps = 0
weight_decay = 0.01
grad_clip = 1.0
log_every = {max(steps // 20, 1)}
checkpoint_every = {steps}
compile = false

[model]
vocab_size = 2048
context_length = {args.context}
d_model = {args.d_model}
num_layers = {args.layers}
num_heads = {args.heads}
d_ff = {4 * args.d_model}
use_rope = false
absolute_positions = true
norm_type = "layernorm"
ffn = "gelu"
dropout = 0.1
tie_embeddings = false
attention_backend = "torch"
"""
    )
    t = time.perf_counter()
    _run([sys.executable, "-m", "cs336_basics.cli", "train", str(toml), "--no-progress"])
    wall = time.perf_counter() - t
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    rates = [r["tokens_per_s"] for r in rows if r.get("tokens_per_s")]
    return {"loss": rows[-1].get("train_loss"), "wall_s": wall, **_steady(rates)}


def _run(cmd: list[str]) -> str:
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd[:5])} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return done.stdout


def _steady(rates: list[float]) -> dict:
    """Median tokens/s of the logging intervals after the first (compilation, warm-up)."""
    steady = rates[1:] or rates
    return {
        "intervals": len(steady),
        "steady_tok_s": statistics.median(steady),
        "steady_min": min(steady),
        "steady_max": max(steady),
    }


def _print(results: dict, steps: int) -> None:
    print(
        f"\n{'path':<9}{'steady tok/s':>14}{'[min, max]':>26}{'end-to-end tok/s':>18}{'wall s':>9}"
    )
    for name, r in results.items():
        spread = f"[{r['steady_min']:,.0f}, {r['steady_max']:,.0f}]"
        print(
            f"{name:<9}{r['steady_tok_s']:>14,.0f}{spread:>26}"
            f"{r['end_to_end_tok_s']:>18,.0f}{r['wall_s']:>9.1f}"
        )
    s, b = results["service"], results["basics"]
    print(
        f"service / basics: steady {s['steady_tok_s'] / b['steady_tok_s']:.3f}, "
        f"end to end {s['end_to_end_tok_s'] / b['end_to_end_tok_s']:.3f} ({steps} steps; "
        f"service loss {s['loss']:.4f} held-out, basics last train loss {b['loss']:.4f})"
    )


if __name__ == "__main__":
    main()
