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


class PeriodicEval:
    """Greedy accuracy on held-out examples every ``every`` steps (and when asked), with
    a sample of the generations (correct and incorrect) written to the run log."""

    def __init__(self, generator, examples, score, max_new_tokens, every, log, batch_size=256):
        self.generator, self.examples, self.score = generator, examples, score
        self.params = sampling_params(max_new_tokens, 0.0)
        self.every, self.log, self.batch_size = every, log, batch_size

    def __call__(self, model: torch.nn.Module, step: int) -> dict[str, Any]:
        if not self.examples:
            return {}
        was_training = model.training
        model.eval()
        start = time.perf_counter()
        try:
            metrics, records = generate_and_score(
                self.generator, self.examples, self.score, self.params, self.batch_size
            )
        finally:
            model.train(was_training)
        self.log.samples(step, records)
        return {
            "eval_accuracy": metrics["accuracy"],
            "eval_format_error_rate": metrics["format_error_rate"],
            "eval_response_tokens": metrics["mean_response_tokens"],
            "eval_time_s": time.perf_counter() - start,
        }

    def due(self, step: int, last: bool) -> bool:
        return last or (self.every > 0 and step % self.every == 0)


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
