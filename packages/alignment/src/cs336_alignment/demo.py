"""The whole pipeline with no downloads: pretrain a small `TransformerLM` on generated
arithmetic word problems, SFT it on a few worked solutions in the ``r1_zero`` format,
then GRPO it with the math grader as reward. Held-out accuracy is measured after each
stage; the curves and a summary land in ``out/``.

Presets: ``test`` (seconds on a CPU; the test suite runs it), ``cpu`` (8 minutes on a
2-core laptop), ``gpu`` (the reported run, one H100/H200).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from cs336_alignment.arithmetic import make_problems, task_prompt
from cs336_alignment.grpo import GRPOConfig, train_grpo
from cs336_alignment.sft import SFTConfig, train_sft


@dataclass
class DemoConfig:
    d_model: int = 64
    num_layers: int = 2
    num_heads: int = 4
    context_length: int = 256
    pretrain_problems: int = 2000
    pretrain_steps: int = 60
    pretrain_batch: int = 16
    pretrain_lr: float = 3e-3
    sft_examples: int = 64
    eval_examples: int = 64
    grpo_questions: int = 2000
    sft: SFTConfig = field(default_factory=SFTConfig)
    grpo: GRPOConfig = field(default_factory=GRPOConfig)


PRESETS = {
    "test": DemoConfig(
        d_model=32, num_layers=1, num_heads=2, pretrain_steps=6, pretrain_batch=4,
        pretrain_problems=100, eval_examples=8, sft_examples=8,
        sft=SFTConfig(steps=2, learning_rate=1e-3, batch_size=4, gradient_accumulation_steps=2,
                      eval_every=0, eval_max_tokens=16, checkpoint_every=0),
        grpo=GRPOConfig(n_grpo_steps=1, learning_rate=1e-4, rollout_batch_size=8, group_size=4,
                        sampling_max_tokens=16, train_batch_size=8,
                        gradient_accumulation_steps=2, eval_every=0, checkpoint_every=0),
    ),
    "cpu": DemoConfig(
        d_model=128, num_layers=4, pretrain_steps=600, pretrain_batch=32, pretrain_problems=20000,
        sft_examples=256,  # 64 (as on the GPU) taught this small model no format in 30 steps
        sft=SFTConfig(steps=60, learning_rate=3e-4, batch_size=32, gradient_accumulation_steps=1,
                      eval_every=20, eval_max_tokens=48, checkpoint_every=0),
        grpo=GRPOConfig(n_grpo_steps=60, learning_rate=5e-5, rollout_batch_size=128,
                        group_size=8, sampling_max_tokens=48, train_batch_size=64,
                        gradient_accumulation_steps=1, epochs_per_rollout_batch=1,
                        loss_type="grpo_clip", eval_every=20, checkpoint_every=20),
        eval_examples=256,
    ),
    "gpu": DemoConfig(
        d_model=256, num_layers=6, num_heads=8, pretrain_steps=800, pretrain_batch=128,
        pretrain_problems=100000, pretrain_lr=2e-3, eval_examples=512,
        sft=SFTConfig(steps=40, learning_rate=3e-4, batch_size=64, gradient_accumulation_steps=1,
                      eval_every=10, eval_max_tokens=48, checkpoint_every=0, precision="bf16"),
        grpo=GRPOConfig(n_grpo_steps=60, learning_rate=5e-5, rollout_batch_size=256,
                        group_size=8, sampling_max_tokens=48, train_batch_size=128,
                        gradient_accumulation_steps=1, epochs_per_rollout_batch=1,
                        loss_type="grpo_clip", eval_every=10, checkpoint_every=60,
                        precision="bf16"),
    ),
}  # fmt: skip


def byte_tokenizer():
    """256 byte tokens + ``<|endoftext|>``: no merges to train, nothing to download."""
    from cs336_common import Tokenizer

    return Tokenizer({i: bytes([i]) for i in range(256)}, [], ["<|endoftext|>"])


def pretrain_text(problems) -> str:
    """Plain worked solutions, not in the r1_zero format (SFT teaches that)."""
    return "".join(
        f"Q: {p.question}\nA:{p.solution.split('</think>')[0]}The answer is {p.answer}."
        "<|endoftext|>"
        for p in problems
    )


def pretrain(cfg: DemoConfig, tokenizer, device, out: Path):
    from cs336_alignment.rl_common import make_optimizer
    from cs336_alignment.run_log import RunLog
    from cs336_common import TransformerLM
    from cs336_common.train import get_lr_cosine_schedule
    from cs336_common.train.batches import RandomBatches
    from cs336_common.train.loop import LoopConfig, TrainLoop

    torch.manual_seed(0)
    model = TransformerLM(
        tokenizer.vocab_size, cfg.context_length, cfg.d_model, cfg.num_layers, cfg.num_heads,
        attention_backend="torch", device=device,
    )  # fmt: skip
    ids = np.array(tokenizer.encode(pretrain_text(make_problems(cfg.pretrain_problems, 1))))
    log = RunLog(out)
    steps = cfg.pretrain_steps
    loop = TrainLoop(
        model,
        make_optimizer(model, cfg.pretrain_lr, 0.1),
        RandomBatches(ids, cfg.pretrain_batch, cfg.context_length, device, seed=0),
        LoopConfig(max_steps=steps, grad_clip=1.0, log_every=max(1, steps // 50),
                   precision=cfg.grpo.precision),
        lr_schedule=lambda s: get_lr_cosine_schedule(
            s, cfg.pretrain_lr, cfg.pretrain_lr / 10, steps // 10, steps
        ),
        on_log=lambda row: log.row({k: v for k, v in row.items() if v is not None}),
    )  # fmt: skip
    loop.run()
    log.plot(["train_loss"], "pretraining")
    return model


def accuracy(model, tokenizer, examples, max_tokens: int) -> dict:
    from cs336_alignment.evaluate import generate_and_score
    from cs336_alignment.generation import make_generator
    from cs336_alignment.rl_common import sampling_params
    from cs336_alignment.tasks import math_score

    model.eval()
    gen = make_generator("engine", model, tokenizer)
    metrics, _ = generate_and_score(
        gen, examples, math_score("r1_zero"), sampling_params(max_tokens, 0.0), 512
    )
    return metrics


def run_demo(preset: str, out: Path, device: torch.device) -> dict:
    cfg = PRESETS[preset]
    tok = byte_tokenizer()
    heldout = [
        {"prompt": task_prompt(p.question), "ground_truth": p.answer}
        for p in make_problems(cfg.eval_examples, seed=999)
    ]
    sft_rows = [
        {"prompt": task_prompt(p.question), "response": p.solution, "ground_truth": p.answer}
        for p in make_problems(cfg.sft_examples, seed=2)
    ]
    grpo_rows = [
        {"prompt": task_prompt(p.question), "ground_truth": p.answer}
        for p in make_problems(cfg.grpo_questions, seed=3)
    ]
    timings, results = {}, {}
    max_tokens = cfg.grpo.sampling_max_tokens

    t0 = time.perf_counter()
    model = pretrain(cfg, tok, device, out / "pretrain")
    timings["pretrain_s"] = time.perf_counter() - t0
    results["pretrained"] = accuracy(model, tok, heldout, max_tokens)

    t0 = time.perf_counter()
    model.train()
    train_sft(model, tok, sft_rows, heldout, cfg.sft, out / "sft")
    timings["sft_s"] = time.perf_counter() - t0
    results["sft"] = accuracy(model, tok, heldout, max_tokens)

    t0 = time.perf_counter()
    model.train()
    train_grpo(model, tok, grpo_rows, heldout, cfg.grpo, out / "grpo")
    timings["grpo_s"] = time.perf_counter() - t0
    results["grpo"] = accuracy(model, tok, heldout, max_tokens)

    summary = {"preset": preset, "device": str(device), "results": results, "timings": timings,
               "config": asdict(cfg)}  # fmt: skip
    from cs336_common.io import write_text_atomic

    write_text_atomic(out / "summary.json", json.dumps(summary, indent=2) + "\n")
    _plot_stages(out)
    return summary


def _plot_stages(out: Path) -> None:
    """One figure: pretraining loss, SFT loss and accuracy, GRPO reward and accuracy."""
    from cs336_alignment.run_log import RunLog, plot_curves

    rows = []
    offset = 0
    for stage in ("sft", "grpo"):
        for r in RunLog(out / stage, resume_step=10**9).rows():
            rows.append({"step": r["step"] + offset, **{f"{stage}_{k}": v for k, v in r.items()
                                                        if k != "step"}})  # fmt: skip
        offset = rows[-1]["step"] if rows else offset
    keys = ["sft_train_loss", "sft_eval_accuracy", "grpo_rollout_reward_mean",
            "grpo_eval_accuracy"]  # fmt: skip
    plot_curves(rows, keys, out / "pipeline.png", "SFT then GRPO on arithmetic word problems")
