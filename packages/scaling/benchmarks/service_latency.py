"""Latency of cached `/loss` answers with concurrent clients on loopback; repeated, median
and spread.

The load generator must not be the bottleneck: each client is its own process (no shared
GIL) with one keep-alive connection and a prebuilt request, and sends a bounded number of
requests back to back (closed loop: with C clients in flight, mean latency = C /
throughput). The server is the real `cs336-scaling serve` (simulated trainer: the one
configuration is "trained" once, then every answer is cached).

    uv run python packages/scaling/benchmarks/service_latency.py [--clients 50]
        [--requests 200] [--repeats 5] [--json OUT.json]
"""

import argparse
import json
import multiprocessing as mp
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlencode

CONFIG = dict(
    d_model=64, num_layers=2, num_heads=2, batch_size=128, learning_rate=1e-3, train_flops=1e13
)
METRICS = ("p50_ms", "p90_ms", "p99_ms", "max_ms", "req_per_s")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clients", type=int, nargs="+", default=[1, 50])
    ap.add_argument("--requests", type=int, default=200, help="per client and round")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--json", type=Path, default=None, help="also write the rounds here")
    args = ap.parse_args()
    print(f"{os.cpu_count()} CPUs; server: cs336-scaling serve (one process)", flush=True)
    with tempfile.TemporaryDirectory() as tmp, _server(Path(tmp) / "state") as (port, key):
        request = (
            f"GET /loss?{urlencode({**CONFIG, 'api_key': key})} HTTP/1.1\r\n"
            f"Host: 127.0.0.1:{port}\r\n\r\n"
        ).encode()
        _client(port, request, 1, None, None)  # the first query trains; the rest are cached
        results = {}
        for clients in args.clients:
            rounds = [_round(port, request, clients, args.requests) for _ in range(args.repeats)]
            results[clients] = rounds
            _print(clients, args.requests, rounds)
    if args.json is not None:
        args.json.write_text(json.dumps({str(c): r for c, r in results.items()}, indent=1))


class _server:
    """`cs336-scaling serve` on a free loopback port with one key; yields (port, key)."""

    def __init__(self, state: Path):
        self.state = state

    def __enter__(self):
        cli = [sys.executable, "-m", "cs336_scaling.cli"]
        key = subprocess.run(
            [*cli, "keys", "--state-dir", str(self.state), "create", "bench"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
        trainer = ["--trainer", "cs336_scaling.simulate:simulated_loss"]
        self.proc = subprocess.Popen(
            [*cli, "serve", "--state-dir", str(self.state), "--port", "0", *trainer],
            stdout=subprocess.PIPE,
            text=True,
        )
        line = self.proc.stdout.readline()
        return int(line.split("http://")[1].split("/")[0].split(":")[1]), key

    def __exit__(self, *exc):
        self.proc.terminate()
        self.proc.wait()


def _round(port: int, request: bytes, clients: int, requests: int) -> dict:
    ctx = mp.get_context("fork")
    ready, go = ctx.Barrier(clients + 1), ctx.Event()
    out = ctx.Queue()
    procs = [
        ctx.Process(target=_client, args=(port, request, requests, (ready, go), out))
        for _ in range(clients)
    ]
    for p in procs:
        p.start()
    ready.wait()  # every client connected and warmed up
    go.set()
    parts = [out.get() for _ in procs]
    for p in procs:
        p.join()
    latencies = sorted(x for lat, _, _ in parts for x in lat)
    wall = max(end for _, _, end in parts) - min(start for _, start, _ in parts)
    ms = [x * 1e3 for x in latencies]

    def pct(q):
        return ms[min(len(ms) - 1, int(q * len(ms)))]

    return {
        "p50_ms": pct(0.50),
        "p90_ms": pct(0.90),
        "p99_ms": pct(0.99),
        "max_ms": ms[-1],
        "req_per_s": len(ms) / wall,
    }


def _client(port, request, requests, sync, out):
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    _exchange(sock, request)  # warm up outside the timing
    if sync is not None:
        sync[0].wait()
        sync[1].wait()
    latencies = []
    start = time.perf_counter()
    for _ in range(requests):
        t = time.perf_counter()
        _exchange(sock, request)
        latencies.append(time.perf_counter() - t)
    end = time.perf_counter()
    sock.close()
    if out is not None:
        out.put((latencies, start, end))


def _exchange(sock: socket.socket, request: bytes) -> None:
    sock.sendall(request)
    data = b""
    while (end := data.find(b"\r\n\r\n")) < 0:
        data += _recv(sock)
    head = data[:end].decode("latin-1")
    if not head.startswith("HTTP/1.1 200"):
        raise RuntimeError(f"unexpected answer: {head.splitlines()[0]!r}")
    length = int(head.lower().split("content-length:")[1].split("\r\n")[0])
    while len(data) < end + 4 + length:
        data += _recv(sock)


def _recv(sock):
    chunk = sock.recv(65536)
    if not chunk:
        raise RuntimeError("the server closed the connection")
    return chunk


def _print(clients: int, requests: int, rounds: list[dict]) -> None:
    print(
        f"\ncached /loss: {clients} concurrent clients x {requests} requests, "
        f"{len(rounds)} rounds (median [min, max])"
    )
    print(f"{'metric':<10}{'median':>10}{'min':>10}{'max':>10}")
    for name in METRICS:
        vals = [r[name] for r in rounds]
        print(f"{name:<10}{statistics.median(vals):>10.2f}{min(vals):>10.2f}{max(vals):>10.2f}")


if __name__ == "__main__":
    main()
