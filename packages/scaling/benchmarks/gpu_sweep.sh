#!/usr/bin/env bash
# A real IsoFLOPs sweep through the service on one GPU, then the fits. Run from the repo root:
#   OUT=results/gpu bash packages/scaling/benchmarks/gpu_sweep.sh
# Env: BUDGETS (default "1e13 3e13 1e14 3e14"), POINTS (5), PARALLEL (4 runs share the GPU),
# SWEEP_SECONDS (sweep time limit; what finished is fitted), SETTINGS (optional JSON file),
# TOKEN_FILE (training data; default: the shipped fortunes), RESUME (a sweep.json of an
# earlier call: its answers are kept and only the missing runs are asked for).
set -u
OUT=${OUT:?set OUT}
BUDGETS=${BUDGETS:-"1e13 3e13 1e14 3e14"}
POINTS=${POINTS:-5}
PARALLEL=${PARALLEL:-4}
SWEEP_SECONDS=${SWEEP_SECONDS:-170}
CLI="python3 -m cs336_scaling.cli"
STATE=$OUT/state
mkdir -p "$OUT"
[ -n "${RESUME:-}" ] && cp "$RESUME" "$OUT/sweep.json"
nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv -l 5 > "$OUT/gpu_util.csv" 2>/dev/null &
MONITOR=$!
KEY=$($CLI keys --state-dir "$STATE" create sweep --budget 1e18)
$CLI serve --state-dir "$STATE" --port 8765 --max-parallel "$PARALLEL" ${SETTINGS:+--settings "$SETTINGS"} \
    ${TOKEN_FILE:+--token-file "$TOKEN_FILE"} \
    > "$OUT/serve.log" 2>&1 &
SERVER=$!
for _ in $(seq 60); do grep -q "service on" "$OUT/serve.log" && break; sleep 0.5; done
start=$(date +%s)
# shellcheck disable=SC2086
timeout "$SWEEP_SECONDS" $CLI sweep --url http://127.0.0.1:8765 --api-key "$KEY" --budgets $BUDGETS \
    --total-budget 1e18 --points "$POINTS" --parallel "$PARALLEL" --out "$OUT/sweep.json" \
    2>&1 | tr '\r' '\n' | grep -v '^sweep: ' | tee "$OUT/sweep.log"
echo "sweep wall time: $(( $(date +%s) - start )) s" | tee -a "$OUT/sweep.log"
kill -TERM $SERVER; wait $SERVER
kill $MONITOR 2>/dev/null
$CLI isoflops "$OUT/sweep.json" --method parabola --out-dir "$OUT/plots" | tee "$OUT/isoflops.txt"
$CLI predict "$OUT/sweep.json" --target-flops 1e19 --bootstrap 200 --out-dir "$OUT/plots" | tee "$OUT/predict.txt"
