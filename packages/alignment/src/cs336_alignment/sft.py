"""Supervised fine-tuning on (prompt, response) pairs with the training core: masked
cross-entropy over the response tokens, gradient accumulation, periodic evaluation with
generation logging, checkpoints and exact resume."""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from cs336_alignment.logprobs import pack_ids
from cs336_alignment.text_tokenizer import as_text_tokenizer


@dataclass
class SFTConfig:
    steps: int = 500  # optimizer steps
    learning_rate: float = 1e-5
    batch_size: int = 32  # examples per optimizer step
    gradient_accumulation_steps: int = 8
    grad_clip: float = 1.0
    weight_decay: float = 0.0
    warmup_steps: int = 0
    eval_every: int = 50
    eval_max_tokens: int = 1024
    checkpoint_every: int = 100
    precision: str = "fp32"
    seed: int = 0

    def __post_init__(self):
        if self.batch_size % self.gradient_accumulation_steps:
            raise ValueError(
                f"batch_size {self.batch_size} must be a multiple of "
                f"gradient_accumulation_steps {self.gradient_accumulation_steps}"
            )


class SFTBatches:
    """Endless shuffled micro-batches ``(input_ids, labels, response_mask)``, epoch
    after epoch; ``state_dict`` is the epoch and position (exact resume)."""

    def __init__(self, examples: list[dict], tokenizer: Any, micro_batch_size: int, seed: int):
        tok = as_text_tokenizer(tokenizer)
        eos = [] if tok.eos_id is None else [tok.eos_id]
        self.prompts = [tok.bos_ids + tok.encode(e["prompt"]) for e in examples]
        self.outputs = [tok.encode(e["response"]) + eos for e in examples]
        self.pad, self.mb, self.seed = tok.pad_id, micro_batch_size, seed
        self.epoch, self.pos = 0, 0
        self._order = self._shuffled()

    def _shuffled(self) -> list[int]:
        order = list(range(len(self.prompts)))
        random.Random(self.seed * 7919 + self.epoch).shuffle(order)
        return order

    def __iter__(self):
        return self

    def __next__(self) -> tuple[torch.Tensor, ...]:
        idx = []
        while len(idx) < self.mb:
            if self.pos == len(self._order):
                self.epoch, self.pos = self.epoch + 1, 0
                self._order = self._shuffled()
            take = self._order[self.pos : self.pos + self.mb - len(idx)]
            idx += take
            self.pos += len(take)
        b = pack_ids([self.prompts[i] for i in idx], [self.outputs[i] for i in idx], self.pad)
        return b["input_ids"], b["labels"], b["response_mask"]

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "pos": self.pos}

    def load_state_dict(self, state: dict) -> None:
        self.epoch, self.pos = state["epoch"], state["pos"]
        self._order = self._shuffled()


def sft_loss(model, batch) -> torch.Tensor:
    """Mean NLL of the response tokens of a micro-batch (the batch moves to the model)."""
    from cs336_alignment.logprobs import model_logits
    from cs336_common.train.loss import cross_entropy

    device = next(model.parameters()).device
    x, y, mask = (t.to(device) for t in batch)
    return cross_entropy(model_logits(model, x), y, mask)


def train_sft(
    policy: torch.nn.Module,
    tokenizer: Any,
    examples: list[dict],
    eval_examples: list[dict],
    cfg: SFTConfig,
    out: Path,
    *,
    generator: Any = None,
    resume: bool = False,
    title: str = "SFT",
) -> list[dict]:
    """Fine-tune ``policy`` on ``examples`` (``prompt``, ``response``) into ``out``;
    ``eval_examples`` (``prompt``, ``ground_truth``) are scored with the math grader."""
    from cs336_alignment.generation import make_generator
    from cs336_alignment.rl_common import (
        PeriodicEval,
        loop_config,
        make_optimizer,
        print_row,
        save_final,
        write_config,
    )
    from cs336_alignment.run_log import RunLog
    from cs336_alignment.tasks import math_score
    from cs336_common.train import get_lr_cosine_schedule
    from cs336_common.train.loop import TrainLoop

    if not examples:
        from cs336_common.errors import InputError

        raise InputError("no training examples")
    batches = SFTBatches(
        examples, tokenizer, cfg.batch_size // cfg.gradient_accumulation_steps, cfg.seed
    )
    loop = TrainLoop(
        policy,
        make_optimizer(policy, cfg.learning_rate, cfg.weight_decay),
        batches,
        loop_config(cfg, cfg.steps, out, resume),
        loss_fn=sft_loss,
        lr_schedule=lambda step: get_lr_cosine_schedule(
            step, cfg.learning_rate, cfg.learning_rate * 0.1, cfg.warmup_steps, cfg.steps
        ),
    )
    start_step = loop.start()
    log = RunLog(out, start_step)
    write_config(out, cfg)
    evaluator = None
    if eval_examples:
        generator = generator or make_generator("engine", policy, tokenizer)
        evaluator = PeriodicEval(
            generator, tokenizer, eval_examples, math_score("r1_zero"), cfg.eval_max_tokens,
            cfg.eval_every, log,
        )  # fmt: skip
        if start_step == 0:
            log.row({"step": 0, **evaluator(policy, 0)})

    def on_log(row: dict) -> None:
        row = {k: v for k, v in row.items() if v is not None}
        if evaluator is not None and evaluator.due(row["step"], row["step"] == cfg.steps):
            row.update(evaluator(policy, row["step"]))
        log.row(row)
        if row["step"] % 10 == 0 or "eval_accuracy" in row:
            print_row(row)

    loop.on_log = on_log
    loop.run()
    save_final(policy, tokenizer, out)
    log.plot(["train_loss", "eval_accuracy", "eval_format_error_rate", "grad_norm"], title)
    return log.rows()
