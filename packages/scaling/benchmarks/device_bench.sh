#!/usr/bin/env bash
# The service's two performance goals on one GPU host, in one go (from the repo root):
#   OUT=results/device bash packages/scaling/benchmarks/device_bench.sh
# 1. cached /loss latency, 1 and 50 concurrent clients (CPU cores of the host);
# 2. training throughput of a service run against `cs336-basics train`, same model and GPU.
set -u
OUT=${OUT:?set OUT}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
B=packages/scaling/benchmarks
{ nproc; nvidia-smi --query-gpu=name,memory.total --format=csv,noheader; } | tee "$OUT/host.txt"
python3 $B/service_latency.py --clients 1 50 --requests 200 --repeats 5 \
    --json "$OUT/latency.json" 2>&1 | tee "$OUT/latency.txt"
python3 $B/service_throughput.py --json "$OUT/throughput.json" 2>&1 | tee "$OUT/throughput.txt"
