"""GRPO (Shao et al. 2024) on the training core: rollouts of ``group_size`` responses
per question, group-normalised rewards, then ``epochs_per_rollout_batch`` passes of
policy-gradient steps over them (1: on-policy; more: off-policy, with ``grpo_clip``).

The rollouts are produced lazily by `RolloutBatches`, the iterator the core's
`TrainLoop` draws micro-batches from: when it runs dry it pushes the policy's weights to
the generator, samples, scores and packs the next rollout batch. Its ``state_dict``
holds the unconsumed micro-batches, so a resumed run continues exactly.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from cs336_alignment.generation import response_text
from cs336_alignment.logprobs import get_response_log_probs, pack_ids
from cs336_alignment.losses import (
    LOSS_TYPES,
    compute_group_normalized_rewards,
    grpo_microbatch_loss,
)
from cs336_alignment.rl_common import print_row, sampling_params, write_config
from cs336_alignment.text_tokenizer import as_text_tokenizer
from cs336_common.device import synchronize


@dataclass
class GRPOConfig:
    n_grpo_steps: int = 200  # rollout batches
    learning_rate: float = 1e-5
    advantage_eps: float = 1e-6
    rollout_batch_size: int = 256  # responses per rollout batch
    group_size: int = 8
    sampling_temperature: float = 1.0
    sampling_max_tokens: int = 1024
    epochs_per_rollout_batch: int = 1  # > 1 is off-policy
    train_batch_size: int = 256  # responses per optimizer step
    gradient_accumulation_steps: int = 128
    loss_type: str = "reinforce_with_baseline"
    use_std_normalization: bool = True
    length_normalization: float | None = None  # None: masked_mean; a constant: Dr. GRPO
    cliprange: float = 0.2
    grad_clip: float = 1.0
    weight_decay: float = 0.0
    eval_every: int = 10  # optimizer steps
    checkpoint_every: int = 50
    precision: str = "fp32"
    seed: int = 0

    def __post_init__(self):
        if self.loss_type not in LOSS_TYPES:
            raise ValueError(f"loss_type must be one of {LOSS_TYPES}, got {self.loss_type!r}")
        if self.length_normalization is not None and not self.length_normalization > 0:
            raise ValueError(
                f"length_normalization must be > 0 (a token count), got {self.length_normalization}"
            )
        if self.rollout_batch_size % self.group_size:
            raise ValueError(
                f"rollout_batch_size {self.rollout_batch_size} must be a multiple of "
                f"group_size {self.group_size}"
            )
        if self.train_batch_size % self.gradient_accumulation_steps:
            raise ValueError(
                f"train_batch_size {self.train_batch_size} must be a multiple of "
                f"gradient_accumulation_steps {self.gradient_accumulation_steps}"
            )
        if (self.rollout_batch_size * self.epochs_per_rollout_batch) % self.train_batch_size:
            raise ValueError(
                "rollout_batch_size * epochs_per_rollout_batch must be a multiple of "
                f"train_batch_size {self.train_batch_size}"
            )

    @property
    def micro_batch_size(self) -> int:
        return self.train_batch_size // self.gradient_accumulation_steps

    @property
    def steps_per_rollout(self) -> int:
        return self.rollout_batch_size * self.epochs_per_rollout_batch // self.train_batch_size

    @property
    def total_steps(self) -> int:
        return self.n_grpo_steps * self.steps_per_rollout


ROLLOUT_PHASES = ("time_rollout_s", "time_reward_s", "time_old_logprobs_s")


class RolloutBatches:
    """Endless micro-batches ``(input_ids, labels, response_mask, advantages, raw_rewards,
    old_log_probs)``, refilled with a new rollout batch whenever empty. ``stats`` holds
    the last rollout's metrics and timings (read by the loop's log hook)."""

    def __init__(
        self,
        policy: torch.nn.Module,
        generator: Any,
        tokenizer: Any,
        examples: list[dict],
        reward_fn: Callable[[str, Any], dict],
        cfg: GRPOConfig,
        on_samples: Callable[[list[dict]], None] | None = None,
    ):
        self.policy, self.generator, self.cfg = policy, generator, cfg
        self.tok = as_text_tokenizer(tokenizer)
        self.examples, self.reward_fn, self.on_samples = examples, reward_fn, on_samples
        self.rng = random.Random(cfg.seed)
        self.buffer: list[tuple[torch.Tensor, ...]] = []
        self.rollouts = 0
        self.stats: dict[str, float] = {}
        self.timings: dict[str, float] = {}  # of the refills since the last pop_timings

    def __iter__(self):
        return self

    def __next__(self) -> tuple[torch.Tensor, ...]:
        if not self.buffer:
            self._refill()
        return self.buffer.pop(0)

    def pop_timings(self) -> dict[str, float]:
        """Seconds spent in rollout, reward and old log-probs since the last call."""
        out = {k: self.timings.get(k, 0.0) for k in ROLLOUT_PHASES}
        self.timings = {}
        return out

    def state_dict(self) -> dict:
        return {"rollouts": self.rollouts, "rng": self.rng.getstate(), "buffer": self.buffer}

    def load_state_dict(self, state: dict) -> None:
        self.rollouts, self.buffer = state["rollouts"], list(state["buffer"])
        self.rng.setstate(_as_rng_state(state["rng"]))

    def _refill(self) -> None:
        cfg, device = self.cfg, next(self.policy.parameters()).device
        times = {}
        t0 = time.perf_counter()
        if getattr(self.generator, "model", None) is not self.policy:
            self.generator.load_weights(self.policy)
        questions = self.rng.sample(self.examples, cfg.rollout_batch_size // cfg.group_size)
        params = sampling_params(
            cfg.sampling_max_tokens, cfg.sampling_temperature, cfg.group_size,
            seed=cfg.seed * 100003 + self.rollouts,
        )  # fmt: skip
        was_training = self.policy.training
        self.policy.eval()
        outs = self.generator.generate([q["prompt"] for q in questions], params)
        synchronize(device)
        times["time_rollout_s"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        completions = [c for per_prompt in outs for c in per_prompt]
        texts = [response_text(c, params.stop) for c in completions]
        truths = [q["ground_truth"] for q in questions for _ in range(cfg.group_size)]
        advantages, raw, meta = compute_group_normalized_rewards(
            self.reward_fn, texts, truths, cfg.group_size, cfg.advantage_eps,
            cfg.use_std_normalization,
        )  # fmt: skip
        times["time_reward_s"] = time.perf_counter() - t0

        prompt_ids = [self.tok.bos_ids + self.tok.encode(q["prompt"]) for q in questions]
        batch = pack_ids(
            [prompt_ids[i // cfg.group_size] for i in range(len(completions))],
            [list(c.ids) for c in completions],
            self.tok.pad_id,
        )
        t0 = time.perf_counter()
        old, entropy = self._old_log_probs(batch, device)
        synchronize(device)
        times["time_old_logprobs_s"] = time.perf_counter() - t0
        self.policy.train(was_training)

        lengths = torch.tensor([len(c.ids) for c in completions], dtype=torch.float32)
        self.stats = {
            **{f"rollout_{k}": v for k, v in meta.items()},
            "rollout_response_tokens": lengths.mean().item(),
            "rollout_entropy": entropy,
        }
        for k, v in times.items():
            self.timings[k] = self.timings.get(k, 0.0) + v
        if self.on_samples is not None:
            self.on_samples(
                [
                    {"prompt": questions[i // cfg.group_size]["prompt"], "response": t,
                     "ground_truth": truths[i], "reward": raw[i].item(),
                     "correct": raw[i].item() > 0, "response_tokens": len(completions[i].ids)}
                    for i, t in enumerate(texts)
                ]
            )  # fmt: skip
        self._fill(batch, advantages, raw, old)
        self.rollouts += 1

    @torch.no_grad()
    def _old_log_probs(self, batch: dict, device) -> tuple[torch.Tensor, float]:
        """Log-probs of the sampled tokens under the policy that sampled them (needed
        by grpo_clip), and the mean response-token entropy, in micro-batches."""
        mb = self.cfg.micro_batch_size
        logps, ent_sum = [], 0.0
        for s in range(0, len(batch["input_ids"]), mb):
            x = batch["input_ids"][s : s + mb].to(device)
            y = batch["labels"][s : s + mb].to(device)
            m = batch["response_mask"][s : s + mb].to(device)
            out = get_response_log_probs(self.policy, x, y, return_token_entropy=True)
            logps.append(out["log_probs"].cpu())
            ent_sum += (out["token_entropy"] * m).sum().item()
        tokens = max(batch["response_mask"].sum().item(), 1)
        return torch.cat(logps), ent_sum / tokens

    def _fill(self, batch, advantages, raw, old) -> None:
        cfg, n = self.cfg, len(advantages)
        for _ in range(cfg.epochs_per_rollout_batch):
            order = list(range(n))
            self.rng.shuffle(order)
            for s in range(0, n, cfg.micro_batch_size):
                idx = torch.tensor(order[s : s + cfg.micro_batch_size])
                self.buffer.append(
                    (
                        batch["input_ids"][idx],
                        batch["labels"][idx],
                        batch["response_mask"][idx],
                        advantages[idx, None],
                        raw[idx, None],
                        old[idx],
                    )
                )


def _as_rng_state(state) -> tuple:
    """random.Random state from a checkpoint (tuples may come back as lists)."""
    version, internal, gauss = state
    return (version, tuple(internal), gauss)


def grpo_loss_fn(cfg: GRPOConfig, last_meta: dict) -> Callable:
    """The core's ``loss_fn(model, batch)`` for a `RolloutBatches` micro-batch."""

    def loss_fn(model, batch):
        x, y, mask, adv, raw, old = batch
        device = next(model.parameters()).device
        x, y, mask = x.to(device), y.to(device), mask.to(device)
        logp = get_response_log_probs(model, x, y)["log_probs"]
        loss, meta = grpo_microbatch_loss(
            logp, mask, cfg.loss_type, raw_rewards=raw.to(device), advantages=adv.to(device),
            old_log_probs=old.to(device), cliprange=cfg.cliprange,
            length_normalization=cfg.length_normalization,
        )  # fmt: skip
        if "clip_fraction" in meta:
            last_meta["clip_fraction"] = meta["clip_fraction"].detach()
        return loss

    return loss_fn


def train_grpo(
    policy: torch.nn.Module,
    tokenizer: Any,
    train_examples: list[dict],
    eval_examples: list[dict],
    cfg: GRPOConfig,
    out: Path,
    *,
    generator: Any = None,
    reward_fn: Callable | None = None,
    resume: bool = False,
    eval_max_tokens: int | None = None,
) -> list[dict]:
    """Run GRPO into ``out`` (see `run_log`); returns the metrics rows."""
    from cs336_alignment.generation import make_generator
    from cs336_alignment.grader import r1_zero_reward_fn
    from cs336_alignment.rl_common import PeriodicEval, loop_config, make_optimizer, save_final
    from cs336_alignment.run_log import RunLog
    from cs336_alignment.tasks import math_score
    from cs336_common.train.loop import TrainLoop

    generator = generator or make_generator("engine", policy, tokenizer)
    loop_cfg = loop_config(cfg, cfg.total_steps, out, resume)
    log_holder: dict[str, Any] = {}
    batches = RolloutBatches(
        policy, generator, tokenizer, train_examples, reward_fn or r1_zero_reward_fn, cfg,
        on_samples=lambda recs: log_holder.setdefault("samples", []).extend(recs),
    )  # fmt: skip
    last_meta: dict[str, Any] = {}
    loop = TrainLoop(
        policy,
        make_optimizer(policy, cfg.learning_rate, cfg.weight_decay),
        batches,
        loop_cfg,
        loss_fn=grpo_loss_fn(cfg, last_meta),
    )
    start_step = loop.start()
    log = RunLog(out, start_step)
    write_config(out, cfg)
    evaluator = PeriodicEval(
        generator, tokenizer, eval_examples, math_score("r1_zero"),
        eval_max_tokens or cfg.sampling_max_tokens, cfg.eval_every, log,
    )  # fmt: skip
    if start_step == 0:
        log.row({"step": 0, **evaluator(policy, 0)})

    clock = {"t": time.perf_counter()}

    def on_log(row: dict) -> None:
        row = {k: v for k, v in row.items() if v is not None}
        row.update(batches.stats)
        # the step's wall time, split: what the refill took, and the rest (training)
        row["time_step_s"] = time.perf_counter() - clock["t"]
        row.update(batches.pop_timings())
        row["time_train_s"] = row["time_step_s"] - sum(row[k] for k in ROLLOUT_PHASES)
        if "clip_fraction" in last_meta:
            row["clip_fraction"] = float(last_meta["clip_fraction"])
        if evaluator.due(row["step"], row["step"] == cfg.total_steps):
            row.update(evaluator(policy, row["step"]))
        samples = log_holder.pop("samples", [])
        if samples:
            log.samples(row["step"], samples, n=4)
        log.row(row)
        print_row(row)
        clock["t"] = time.perf_counter()

    loop.on_log = on_log
    loop.run()
    save_final(policy, tokenizer, out)
    log.plot(
        ["rollout_reward_mean", "eval_accuracy", "train_loss", "rollout_response_tokens",
         "rollout_entropy", "grad_norm"],
        "GRPO",
    )  # fmt: skip
    return log.rows()
