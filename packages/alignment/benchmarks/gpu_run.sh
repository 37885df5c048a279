#!/usr/bin/env bash
# The reported GPU run, in one command (from a folder holding shared/ and
# packages/alignment/): the rollout benchmark, then the offline demo (pretrain -> SFT ->
# GRPO) on the gpu preset, then the GRPO step time split. Results go to $OUT (or ./gpu_out).
set -o pipefail
export PYTHONUNBUFFERED=1 PYTHONPATH=shared/src:packages/alignment/src${PYTHONPATH:+:$PYTHONPATH}
OUT=${OUT:-gpu_out}
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | tee "$OUT/gpu.txt"
python3 -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__)" | tee -a "$OUT/gpu.txt"
python3 packages/alignment/benchmarks/rollout_bench.py --device cuda --out "$OUT/rollout_bench.json" 2>&1 | tee "$OUT/rollout_bench.log"
python3 -m cs336_alignment.cli demo --preset gpu --device cuda --out "$OUT/demo" 2>&1 | tee "$OUT/demo.log"
python3 packages/alignment/benchmarks/grpo_time_split.py "$OUT/demo/grpo/metrics.jsonl" 2>&1 | tee "$OUT/grpo_time_split.txt"
rm -rf "$OUT"/demo/*/checkpoints "$OUT"/demo/*/final/model.safetensors
