#!/usr/bin/env bash
# Distributed benchmarks on one host with 2 GPUs, in one go: the NCCL all-reduce sweep
# (1 MiB .. 1 GiB; COMM=0 skips it), then ddp-bench for VARIANTS (default all; PyTorch
# DDP and FSDP2 among them) on one model, interleaved over rounds.
# Run from the repository root, with any python3 that has torch (PYTHONPATH is set here):
#   OUT=runs/ddp_2gpu bash packages/systems/benchmarks/ddp_2gpu.sh
#   COMM=0 VARIANTS="bucketed torch sharded fsdp torch-fsdp" OUT=... bash ...
# CPU rehearsal: OUT=/tmp/x BACKEND=gloo MODEL=tiny SIZES="1 2" DDP_ARGS="--context-length 16" bash ...
set -euo pipefail
# NVLink multicast (NVLS) can take a shared host's GPUs down; keep it off everywhere
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
export PYTHONUNBUFFERED=1
export PYTHONPATH="shared/src:packages/systems/src${PYTHONPATH:+:$PYTHONPATH}"
OUT=${OUT:-runs/ddp_2gpu}
BACKEND=${BACKEND:-nccl}
MODEL=${MODEL:-xl}
NPROC=${NPROC:-2}
SIZES=${SIZES:-1 2 4 8 16 32 64 128 256 512 1024}
VARIANTS=${VARIANTS:-all}
COMM=${COMM:-1}
DDP_ARGS=${DDP_ARGS:---context-length 512 --batch-size 4 --dtype bf16 --warmup 2 --steps 8 --rounds 3}
mkdir -p "$OUT"
LIMIT=${LIMIT:-900}  # seconds per launch, so a hung collective cannot eat the session
run() { timeout "$LIMIT" python3 -m torch.distributed.run --standalone --nproc_per_node "$NPROC" -m cs336_systems.cli "$@"; }

{
  date -u
  python3 -c 'import sys, torch; print("python", sys.version.split()[0], "torch", torch.__version__, "cuda", torch.version.cuda, "nccl", torch.cuda.nccl.version() if torch.cuda.is_available() else None)'
  if command -v nvidia-smi >/dev/null; then
    nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv
    nvidia-smi topo -m || true
  fi
  nproc
} >"$OUT/hardware.txt" 2>&1
cat "$OUT/hardware.txt"

# shellcheck disable=SC2086  # SIZES, VARIANTS and DDP_ARGS are word lists
if [ "$COMM" = 1 ]; then
  run comm-bench --backend "$BACKEND" --sizes-mib $SIZES --out "$OUT" 2>&1 | tee "$OUT/comm_bench.log" ||
    echo "comm-bench failed; going on with ddp-bench"
fi
# shellcheck disable=SC2086
run ddp-bench --backend "$BACKEND" --model "$MODEL" --variant $VARIANTS $DDP_ARGS --out "$OUT" 2>&1 | tee "$OUT/ddp_bench.log" || {
  echo "ddp-bench on $MODEL failed; retrying on ${FALLBACK_MODEL:=large}"
  run ddp-bench --backend "$BACKEND" --model "$FALLBACK_MODEL" --variant $VARIANTS $DDP_ARGS --out "$OUT" 2>&1 | tee "$OUT/ddp_bench_$FALLBACK_MODEL.log"
}
