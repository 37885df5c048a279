#!/usr/bin/env bash
# One device call that produces every GPU table of the README's "FlashAttention-2 and
# benchmarks" section. From the repository root on the GPU machine (no uv there):
#   bash packages/systems/benchmarks/flash_h100.sh      # results land in $OUT (default ./bench_results)
# About 8 minutes on one H100; each step has its own time limit so one overrun loses only
# its own table. Output: $OUT/results.tgz (tables + logs).
set -u
export PYTHONPATH=shared/src:packages/basics/src:packages/systems/src PYTHONUNBUFFERED=1
OUT=${OUT:-bench_results}
R=$OUT/res
mkdir -p "$R"
B="python3 -m cs336_systems.cli bench"
step() {  # step NAME SECONDS COMMAND...
  local name=$1 limit=$2
  shift 2
  (time timeout "$limit" "$@") >"$R/log_$name.txt" 2>&1
  tail -n 12 "$R/log_$name.txt"
}
nvidia-smi --query-gpu=name,driver_version --format=csv >"$R/env.txt"
python3 -c "import torch, triton; print(torch.__version__, triton.__version__)" >>"$R/env.txt"
step leaderboard 120 $B flash --part leaderboard --no-progress --out "$R"
step sweep_bf16 150 $B flash --part sweep --dtypes bf16 --no-progress --out "$R/bf16"
# fp32 in two halves: one half fits its limit, where the whole sweep did not
step sweep_fp32_small_d 110 $B flash --part sweep --dtypes fp32 --head-dims 16,32 --no-progress --out "$R/fp32_small_d"
step sweep_fp32_large_d 110 $B flash --part sweep --dtypes fp32 --head-dims 64,128 --no-progress --out "$R/fp32_large_d"
step attention 130 $B attention --steps 10 --warmup 2 --no-progress --out "$R"
step tests 170 env CS336_FLASH_AUTOTUNE=0 python3 -m pytest -o addopts= --import-mode=importlib \
  -p no:cacheprovider -p no:timeout -q -W ignore packages/systems/tests/test_flash.py -m gpu -rf
tar czf "$OUT/results.tgz" -C "$OUT" res && rm -rf "$R"
