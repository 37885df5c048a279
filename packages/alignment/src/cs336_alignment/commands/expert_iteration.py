"""Expert iteration: for each of --ei-steps iterations, sample --samples-per-question
responses to --questions-per-step questions, keep those the r1_zero grader marks correct,
and fine-tune on them (SFT settings as for `sft`). Iteration k writes --out/ei_k/ (an
SFT run folder); `--resume` continues a stopped run at its first unfinished iteration.

Example:
  cs336-alignment expert-iteration --model runs/sft/final --out runs/ei --ei-steps 3
"""

from __future__ import annotations

import argparse

from cs336_alignment.config_args import add_config_flags, config_from_args
from cs336_alignment.expert_iteration import EIConfig
from cs336_alignment.sft import SFTConfig

from ._common import add_policy_args, eval_questions, setup, training_run


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_policy_args(p, "JSONL of question+answer or prompt+ground_truth")
    add_config_flags(p, EIConfig)
    add_config_flags(p, SFTConfig, prefix="sft-")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from cs336_alignment.expert_iteration import expert_iteration
    from cs336_alignment.training_data import questions
    from cs336_common.errors import UserError

    out = Path(args.out)
    if not args.resume and ((out / "ei.jsonl").exists() or any(out.glob("ei_*"))):
        raise UserError(
            f"--out {out} already holds an expert-iteration run: pass --resume to continue "
            "it, or pick another --out"
        )
    cfg = config_from_args(args, EIConfig)
    sft_cfg = config_from_args(args, SFTConfig, prefix="sft_")
    # the data first: a malformed file fails before a large model loads
    train, held = questions(args.data, None, args.examples, seed=3), eval_questions(args)
    policy, tok, gen, out = setup(args, [args.data, args.eval_data])
    with training_run(out):
        expert_iteration(policy, tok, train, held, cfg, sft_cfg, out, generator=gen)
    return 0
