"""Pieces every loop shares: the optimizer, the sampling parameters, periodic
evaluation with generation logging, and the run's final save and curves."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch

from cs336_alignment.evaluate import generate_and_score


def sampling_params(max_new_tokens: int, temperature: float, num_samples: int = 1, seed=None):
    from cs336_common.engine import SamplingParams

    return SamplingParams(
        max_new_tokens=max_new_tokens,
        temperature=temperature,
        stop=("</answer>",),
        num_samples=num_samples,
        seed=seed,
    )


def make_optimizer(model: torch.nn.Module, lr: float, weight_decay: float = 0.0):
    from cs336_common.train import AdamW

    return AdamW(model.parameters(), lr=lr, weight_decay=weight_decay, betas=(0.9, 0.95))


def loop_config(cfg, max_steps: int, out: Path, resume: bool):
    """The training core's settings of an SFT, GRPO or DPO run: one log row per step, two
    checkpoints kept in ``out/checkpoints``."""
    from cs336_common.train.loop import LoopConfig

    return LoopConfig(
        max_steps=max_steps,
        grad_accum_steps=cfg.gradient_accumulation_steps,
        grad_clip=cfg.grad_clip,
        precision=cfg.precision,
        log_every=1,
        checkpoint_every=cfg.checkpoint_every,
        keep_checkpoints=2,
        checkpoint_dir=str(out / "checkpoints"),
        resume=resume,
    )


class PeriodicEval:
    """Greedy accuracy on held-out examples every ``every`` steps (and when asked). A
    sample of the generations, correct and incorrect, goes to the run log with reward,
    length and mean token entropy; the metrics split response length the same way."""

    def __init__(self, generator, tokenizer, examples, score, max_new_tokens, every, log):
        self.generator, self.tokenizer = generator, tokenizer
        self.examples, self.score = examples, score
        self.params = sampling_params(max_new_tokens, 0.0)
        self.every, self.log = every, log

    def __call__(self, model: torch.nn.Module, step: int) -> dict[str, Any]:
        if not self.examples:
            return {}
        was_training = model.training
        model.eval()
        start = time.perf_counter()
        try:
            metrics, records = generate_and_score(
                self.generator, self.examples, self.score, self.params, batch_size=256
            )
            right = [r for r in records if r["correct"]]
            wrong = [r for r in records if not r["correct"]]
            picked = right[:8] + wrong[:8]
            for r, h in zip(picked, self._entropies(model, picked), strict=True):
                r["reward"], r["mean_token_entropy"] = float(bool(r["correct"])), h
        finally:
            model.train(was_training)
        self.log.samples(step, picked)
        return {
            "eval_accuracy": metrics["accuracy"],
            "eval_format_error_rate": metrics["format_error_rate"],
            "eval_response_tokens": metrics["mean_response_tokens"],
            "eval_response_tokens_correct": _mean(r["response_tokens"] for r in right),
            "eval_response_tokens_incorrect": _mean(r["response_tokens"] for r in wrong),
            "eval_time_s": time.perf_counter() - start,
        }

    @torch.no_grad()
    def _entropies(self, model, records: list[dict]) -> list[float]:
        """Mean entropy of the model's next-token distribution over each response."""
        if not records:
            return []
        from cs336_alignment.logprobs import get_response_log_probs, tokenize_prompt_and_output

        batch = tokenize_prompt_and_output(
            [r["prompt"] for r in records], [r["response"] for r in records], self.tokenizer
        )
        # re-encoding a sampled text may take more tokens than sampling did: keep what fits
        context = getattr(getattr(model, "config", None), "context_length", None)
        if context is not None:
            batch = {k: v[:, :context] for k, v in batch.items()}
        device = next(model.parameters()).device
        ent = get_response_log_probs(
            model, batch["input_ids"].to(device), batch["labels"].to(device), True
        )["token_entropy"].cpu()
        mask = batch["response_mask"].float()
        return ((ent * mask).sum(-1) / mask.sum(-1).clamp(min=1)).tolist()

    def due(self, step: int, last: bool) -> bool:
        return last or (self.every > 0 and step % self.every == 0)


def _mean(values) -> float | None:
    values = list(values)
    return sum(values) / len(values) if values else None


def save_final(model, tokenizer, out: Path) -> Path:
    """The trained policy in ``out/final`` (ours: our format; HF: save_pretrained)."""
    from cs336_alignment.generation import is_hf_model
    from cs336_alignment.policy_io import save_policy

    final = out / "final"
    if is_hf_model(model):
        model.save_pretrained(final)
        tokenizer.save_pretrained(final)
        return final
    return save_policy(model, tokenizer, final)


def write_config(out: Path, cfg) -> None:
    import dataclasses
    import json

    from cs336_common.io import write_text_atomic

    write_text_atomic(out / "config.json", json.dumps(dataclasses.asdict(cfg), indent=2) + "\n")


def print_row(row: dict) -> None:
    keys = ("step", "train_loss", "rollout_reward_mean", "eval_accuracy", "time_rollout_s")
    parts = [f"{k}={row[k]:.4g}" if isinstance(row[k], float) else f"{k}={row[k]}"
             for k in keys if k in row]  # fmt: skip
    print(" ".join(parts), flush=True)
