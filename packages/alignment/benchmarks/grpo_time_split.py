"""A GRPO run's step time split (rollout, reward, old log-probs, train), from its
metrics.jsonl: totals over the run and the median per rollout batch.

  python packages/alignment/benchmarks/grpo_time_split.py runs/demo/grpo/metrics.jsonl
"""

from __future__ import annotations

import json
import statistics
import sys

PHASES = ("time_rollout_s", "time_reward_s", "time_old_logprobs_s", "time_train_s")


def main(path: str) -> None:
    with open(path, encoding="utf-8") as f:
        rows = [json.loads(x) for x in f if x.strip()]
    rows = [r for r in rows if "time_step_s" in r]
    totals = {k: sum(r[k] for r in rows) for k in PHASES}
    total = sum(totals.values())
    refills = [r for r in rows if r["time_rollout_s"] > 0]
    print(f"{len(rows)} optimizer steps, {len(refills)} rollout batches, {total:.1f} s")
    print(f"{'phase':<16}{'total s':>10}{'share':>8}{'median per rollout batch s':>30}")
    per_batch = len(rows) / max(len(refills), 1)
    for k in PHASES:
        vals = [r[k] for r in (refills if k != "time_train_s" else rows)]
        med = statistics.median(vals) * (per_batch if k == "time_train_s" else 1)
        name = k.removeprefix("time_").removesuffix("_s")
        print(f"{name:<16}{totals[k]:>10.2f}{totals[k] / total:>8.1%}{med:>30.3f}")


if __name__ == "__main__":
    main(sys.argv[1])
