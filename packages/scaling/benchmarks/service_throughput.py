"""One configuration trained twice, side by side: by the trainer in this process (the common
TrainLoop, what `cs336-basics train` also runs on) and through the service (HTTP, queue,
submitit subprocess). Wall time per run and tokens/s; repeated, median and spread.

    uv run python packages/scaling/benchmarks/service_throughput.py [--d-model 64 --flops 3e10]
"""

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from cs336_scaling.client import ScalingClient
from cs336_scaling.settings import ServiceSettings, tokens_for
from cs336_scaling.trainer import train_run


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--d-model", type=int, default=64)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--flops", type=float, default=3e10)
    ap.add_argument("--context", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    settings = {
        "context_length": args.context,
        "eval_tokens": 8192,
        "train_flops": [args.flops],
        "d_model": [16, 1024],
    }
    config = dict(
        d_model=args.d_model,
        num_layers=args.layers,
        num_heads=2,
        batch_size=128,
        learning_rate=1e-3,
        train_flops=args.flops,
    )
    tokens = tokens_for(config)
    direct, served = [], []
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "settings.json"
        path.write_text(json.dumps(settings))
        full = ServiceSettings.from_dict(settings).to_dict()
        cli = [sys.executable, "-m", "cs336_scaling.cli"]
        for i in range(args.repeats):
            t = time.perf_counter()
            train_run(config, full)
            direct.append(time.perf_counter() - t)
            state = Path(tmp) / f"state{i}"  # a fresh store: the service must train again
            key = subprocess.run(
                [*cli, "keys", "--state-dir", str(state), "create", "b"],
                check=True,
                capture_output=True,
                text=True,
            ).stdout.strip()
            server = subprocess.Popen(
                [*cli, "serve", "--state-dir", str(state), "--port", "0", "--settings", str(path)],
                stdout=subprocess.PIPE,
                text=True,
            )
            try:
                url = "http://" + server.stdout.readline().split("http://")[1].split("/")[0]
                t = time.perf_counter()
                ScalingClient(url, key).loss(**config)
                served.append(time.perf_counter() - t)
            finally:
                server.terminate()
                server.wait()
    print(f"config {config}, {tokens} tokens, {args.repeats} repeats")
    print(f"{'path':<10}{'median s':>10}{'min s':>10}{'max s':>10}{'tokens/s':>12}")
    for name, times in (("direct", direct), ("service", served)):
        med = statistics.median(times)
        print(f"{name:<10}{med:>10.2f}{min(times):>10.2f}{max(times):>10.2f}{tokens / med:>12.0f}")
    print(
        f"service / direct throughput: {statistics.median(direct) / statistics.median(served):.3f}"
    )


if __name__ == "__main__":
    main()
