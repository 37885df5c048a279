"""DPO on preference pairs: --data is JSONL with prompt, chosen, rejected (Alpaca
template, as compute_per_instance_dpo_loss). The reference is the starting policy; its
log-probabilities are computed once before training. Logs loss, preference accuracy
and reward margin; --eval-data pairs are scored every --eval-every steps.

Example:
  cs336-alignment dpo --model runs/sft/final --data hh_pairs.jsonl --out runs/dpo --beta 0.1
"""

from __future__ import annotations

import argparse

from cs336_alignment.config_args import add_config_flags, config_from_args
from cs336_alignment.dpo_train import DPOConfig
from cs336_common.cli import positive_int

from ._common import add_policy_args, setup, training_run


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_policy_args(p, "JSONL of prompt+chosen+rejected", eval_data=False)
    p.add_argument("--eval-data", help="held-out preference pairs JSONL")
    p.add_argument("--eval-limit", type=positive_int, default=256,
                   help="held-out pairs (default %(default)s)")  # fmt: skip
    add_config_flags(p, DPOConfig)


def run(args: argparse.Namespace) -> int:
    from cs336_alignment.dpo_train import train_dpo
    from cs336_alignment.training_data import preference_pairs
    from cs336_common.errors import UsageError

    if args.data is None:
        raise UsageError("dpo needs --data (preference pairs)")
    cfg = config_from_args(args, DPOConfig)
    # the data first: a malformed file fails before a large model loads
    pairs = preference_pairs(args.data)
    held = preference_pairs(args.eval_data)[: args.eval_limit] if args.eval_data else []
    policy, tok, _, out = setup(args, [args.data, args.eval_data], cfg)
    with training_run(out):
        train_dpo(policy, tok, pairs, held, cfg, out, resume=args.resume)
    return 0
