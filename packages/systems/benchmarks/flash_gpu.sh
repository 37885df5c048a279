#!/usr/bin/env bash
# One device call for the GPU tables of the systems README: the gpu-marked tests (timed,
# from a cold Triton cache, autotuning on), the FlashAttention leaderboard against every
# PyTorch SDPA backend with its error table, `bench model --compile`, and (optional, with
# SWEEP=1) the course's attention grid. From the repository root on the GPU machine (no uv
# there; PYTHONPATH is set here):
#   OUT=bench_results bash packages/systems/benchmarks/flash_gpu.sh
# Each step has its own time limit, so one overrun loses only its own table.
# Output: the tables on stdout and $OUT/results.tgz (tables + logs).
set -u
export PYTHONPATH=shared/src:packages/systems/src PYTHONUNBUFFERED=1
OUT=${OUT:-bench_results}
R=$OUT/res
mkdir -p "$R"
B="python3 -m cs336_systems.cli bench"
step() { # step NAME SECONDS COMMAND...
  local name=$1 limit=$2
  shift 2
  (time timeout "$limit" "$@") >"$R/log_$name.txt" 2>&1
  tail -n 25 "$R/log_$name.txt"
}
{
  nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv
  python3 -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__, 'cudnn', torch.backends.cudnn.version())"
} >"$R/hardware.txt" 2>&1
cat "$R/hardware.txt"
step tests 170 env TRITON_CACHE_DIR="$(mktemp -d)" python3 -m pytest -o addopts= \
  --import-mode=importlib -p no:cacheprovider -q -W ignore packages/systems/tests -m gpu -rf \
  --durations=6
step leaderboard 120 $B flash --part leaderboard --no-progress --out "$R"
for size in small medium; do  # one table each: a size that overruns loses only its own
  step "model_$size" 100 $B model --sizes $size --context-lengths 256 --dtype bf16 \
    --attention flash --compile --warmup 3 --steps 10 --no-progress --out "$R/model_$size"
done
if [ "${SWEEP:-0}" = 1 ]; then
  step sweep 150 $B flash --part sweep --dtypes bf16 --seq-lens 256,1024,4096,16384,65536 \
    --no-progress --out "$R"
fi
tar czf "$OUT/results.tgz" -C "$OUT" res && rm -rf "$R"
