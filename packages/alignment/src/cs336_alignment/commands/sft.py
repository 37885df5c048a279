"""Supervised fine-tuning on (prompt, response) pairs: masked cross-entropy on the
response tokens, gradient accumulation, cosine schedule, periodic greedy evaluation on
held-out questions with generation logging, checkpoints (--resume continues exactly).

--data: JSONL with prompt and response (the response continues the prompt, e.g. an
r1_zero reasoning trace ending in </answer>). Writes metrics.jsonl, generations.jsonl,
curves.png, checkpoints/ and final/ to --out.

Example:
  cs336-alignment sft --model runs/base --data sft.jsonl --out runs/sft --steps 200
"""

from __future__ import annotations

import argparse

from cs336_alignment.config_args import add_config_flags, config_from_args
from cs336_alignment.sft import SFTConfig

from ._common import add_policy_args, eval_questions, setup, training_run


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_policy_args(p, "JSONL of prompt+response")
    add_config_flags(p, SFTConfig)


def run(args: argparse.Namespace) -> int:
    from cs336_alignment.sft import train_sft
    from cs336_alignment.training_data import sft_examples

    cfg = config_from_args(args, SFTConfig)
    # the data first: a malformed file fails before a large model loads
    train, held = sft_examples(args.data, args.examples, seed=2), eval_questions(args)
    policy, tok, gen, out = setup(args, [args.data, args.eval_data], cfg)
    with training_run(out):
        rows = train_sft(policy, tok, train, held, cfg, out, generator=gen, resume=args.resume)
    print(f"done: {out}/final ({len(rows)} rows in {out}/metrics.jsonl)")
    return 0
