"""GRPO: sample --group-size responses per question, reward them with the r1_zero math
grader, normalise rewards within each group, and take policy-gradient steps
(--loss-type no_baseline | reinforce_with_baseline | grpo_clip; --epochs-per-rollout-batch
> 1 is off-policy and wants grpo_clip). --length-normalization N divides each response's
summed loss by the constant N (Dr. GRPO) instead of its length; --no-use-std-normalization
drops the division by the group's std.

--data: JSONL of question+answer (GSM8K format) or prompt+ground_truth. Writes
metrics.jsonl (rewards, losses, clip fraction, entropy, eval accuracy, the step's time
split: rollout / reward / old log-probs / train), generations.jsonl, curves.png,
checkpoints/ and final/ to --out.

Example:
  cs336-alignment grpo --model runs/sft/final --out runs/grpo --n-grpo-steps 50 \\
      --rollout-batch-size 256 --group-size 8 --loss-type grpo_clip
"""

from __future__ import annotations

import argparse

from cs336_alignment.config_args import add_config_flags, config_from_args
from cs336_alignment.grpo import GRPOConfig

from ._common import add_policy_args, eval_questions, setup, training_run


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_policy_args(p, "JSONL of question+answer or prompt+ground_truth")
    add_config_flags(p, GRPOConfig)


def run(args: argparse.Namespace) -> int:
    from cs336_alignment.grpo import train_grpo
    from cs336_alignment.training_data import questions

    cfg = config_from_args(args, GRPOConfig)
    # the data first: a malformed file fails before a large model loads
    train, held = questions(args.data, None, args.examples, seed=3), eval_questions(args)
    policy, tok, gen, out = setup(args, [args.data, args.eval_data], cfg)
    with training_run(out):
        rows = train_grpo(policy, tok, train, held, cfg, out, generator=gen, resume=args.resume)
    print(f"done: {out}/final ({len(rows)} rows in {out}/metrics.jsonl)")
    return 0
