"""Latency of cached `/loss` answers: 50 concurrent clients on loopback, each with its own
keep-alive connection, a bounded number of requests each; repeated, median and spread.

    uv run python packages/scaling/benchmarks/service_latency.py [--clients 50] [--requests 40]
"""

import argparse
import http.client
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlencode

CONFIG = dict(
    d_model=64, num_layers=2, num_heads=2, batch_size=128, learning_rate=1e-3, train_flops=1e13
)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--requests", type=int, default=40, help="per client")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        state = Path(tmp) / "state"
        cli = [sys.executable, "-m", "cs336_scaling.cli"]
        key = subprocess.run(
            [*cli, "keys", "--state-dir", str(state), "create", "bench"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
        server = subprocess.Popen(
            [
                *cli,
                "serve",
                "--state-dir",
                str(state),
                "--port",
                "0",
                "--trainer",
                "cs336_scaling.simulate:simulated_loss",
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            host_port = server.stdout.readline().split("http://")[1].split("/")[0]
            host, port = host_port.split(":")
            path = "/loss?" + urlencode({**CONFIG, "api_key": key})
            _get(host, int(port), path)  # trains (simulated) once; every later answer is cached
            rows = [
                _round(host, int(port), path, args.clients, args.requests)
                for _ in range(args.repeats)
            ]
        finally:
            server.terminate()
            server.wait()
    print(
        f"cached /loss, {args.clients} concurrent clients x {args.requests} requests, {args.repeats} repeats"
    )
    print(f"{'metric':<14}{'median':>10}{'min':>10}{'max':>10}")
    for name in ("p50_ms", "p99_ms", "max_ms", "req_per_s"):
        vals = [r[name] for r in rows]
        print(f"{name:<14}{statistics.median(vals):>10.2f}{min(vals):>10.2f}{max(vals):>10.2f}")


def _get(host, port, path, conn=None):
    conn = conn or http.client.HTTPConnection(host, port, timeout=60)
    conn.request("GET", path)
    resp = conn.getresponse()
    body = resp.read()
    if resp.status != 200:
        raise RuntimeError(f"HTTP {resp.status}: {body[:200]!r}")
    return conn


def _round(host, port, path, clients, requests):
    latencies, lock = [], threading.Lock()
    barrier = threading.Barrier(clients + 1)

    def client():
        conn = _get(host, port, path)  # connect and warm up outside the timing
        barrier.wait()
        mine = []
        for _ in range(requests):
            t = time.perf_counter()
            _get(host, port, path, conn)
            mine.append(time.perf_counter() - t)
        conn.close()
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    barrier.wait()
    start = time.perf_counter()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    latencies.sort()
    ms = [x * 1e3 for x in latencies]
    return {
        "p50_ms": ms[len(ms) // 2],
        "p99_ms": ms[int(len(ms) * 0.99) - 1],
        "max_ms": ms[-1],
        "req_per_s": len(ms) / wall,
    }


if __name__ == "__main__":
    main()
