"""DPO training on preference pairs ``{"prompt", "chosen", "rejected"}`` with the
training core. The reference model's log-probabilities are computed once, before
training (the reference is the starting policy and never changes), so only the policy
sits in memory while training."""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from cs336_alignment.logprobs import get_response_log_probs, pack_ids
from cs336_alignment.prompt_templates import alpaca_prompt
from cs336_alignment.text_tokenizer import as_text_tokenizer


@dataclass
class DPOConfig:
    steps: int = 200
    beta: float = 0.1
    learning_rate: float = 1e-6
    batch_size: int = 64  # pairs per optimizer step
    gradient_accumulation_steps: int = 64
    grad_clip: float = 1.0
    eval_every: int = 20
    checkpoint_every: int = 100
    precision: str = "fp32"
    seed: int = 0

    def __post_init__(self):
        # checked here, not in train_dpo, so the CLI reports it as a usage error
        if (
            self.gradient_accumulation_steps < 1
            or self.batch_size < self.gradient_accumulation_steps
            or self.batch_size % self.gradient_accumulation_steps
        ):
            raise ValueError(
                "batch_size must be a positive multiple of gradient_accumulation_steps"
            )


def encode_pairs(pairs: list[dict], tokenizer: Any) -> list[tuple[list[int], list[int], list[int]]]:
    """(prompt ids, chosen ids + EOS, rejected ids + EOS), Alpaca-formatted as in
    `compute_per_instance_dpo_loss`."""
    tok = as_text_tokenizer(tokenizer)
    eos = [] if tok.eos_id is None else [tok.eos_id]
    return [
        (tok.bos_ids + tok.encode(alpaca_prompt(p["prompt"])),
         tok.encode(p["chosen"]) + eos, tok.encode(p["rejected"]) + eos)
        for p in pairs
    ]  # fmt: skip


def _logp_sums(model, prompts, responses, pad: int) -> torch.Tensor:
    b = pack_ids(prompts, responses, pad)
    device = next(model.parameters()).device
    b = {k: v.to(device) for k, v in b.items()}
    lp = get_response_log_probs(model, b["input_ids"], b["labels"])["log_probs"]
    return (lp * b["response_mask"]).sum(-1)


class PairBatches:
    """Endless shuffled micro-batches of pair indices (a tensor, so the core can count
    it); ``state_dict``: epoch and position."""

    def __init__(self, n: int, micro: int, seed: int):
        self.n, self.micro, self.seed, self.epoch, self.pos = n, micro, seed, 0, 0

    def _order(self) -> list[int]:
        order = list(range(self.n))
        random.Random(self.seed * 7919 + self.epoch).shuffle(order)
        return order

    def __iter__(self):
        return self

    def __next__(self) -> tuple[torch.Tensor]:
        if self.pos + self.micro > self.n:
            self.epoch, self.pos = self.epoch + 1, 0
        idx = self._order()[self.pos : self.pos + self.micro]
        self.pos += self.micro
        return (torch.tensor(idx),)

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "pos": self.pos}

    def load_state_dict(self, state: dict) -> None:
        self.epoch, self.pos = state["epoch"], state["pos"]


def train_dpo(
    policy, tokenizer, pairs: list[dict], eval_pairs: list[dict], cfg: DPOConfig, out: Path,
    *, resume: bool = False,
) -> list[dict]:  # fmt: skip
    """DPO into ``out``: loss, reward margin and preference accuracy per step."""
    from cs336_alignment.rl_common import (
        loop_config,
        make_optimizer,
        print_row,
        save_final,
        write_config,
    )
    from cs336_alignment.run_log import RunLog
    from cs336_common.errors import InputError
    from cs336_common.train.loop import TrainLoop

    micro = cfg.batch_size // cfg.gradient_accumulation_steps
    if len(pairs) < micro:
        raise InputError(f"{len(pairs)} pairs, fewer than one micro-batch ({micro})")
    pad = as_text_tokenizer(tokenizer).pad_id
    enc, eval_enc = encode_pairs(pairs, tokenizer), encode_pairs(eval_pairs, tokenizer)
    ref, eval_ref = _reference(policy, enc, pad, micro), _reference(policy, eval_enc, pad, micro)
    stats: dict[str, Any] = {}

    def margins(model, items, refs) -> torch.Tensor:
        prompts = [e[0] for e in items]
        chosen = _logp_sums(model, prompts, [e[1] for e in items], pad)
        rejected = _logp_sums(model, prompts, [e[2] for e in items], pad)
        refs = refs.to(chosen.device)
        return (chosen - refs[:, 0]) - (rejected - refs[:, 1])

    def loss_fn(model, batch):
        idx = batch[0].tolist()
        m = margins(model, [enc[i] for i in idx], ref[idx])
        stats["accuracy"] = (m > 0).float().mean().detach()
        stats["margin"] = m.mean().detach()
        return -F.logsigmoid(cfg.beta * m).mean()

    loop = TrainLoop(
        policy, make_optimizer(policy, cfg.learning_rate), PairBatches(len(enc), micro, cfg.seed),
        loop_config(cfg, cfg.steps, out, resume),
        loss_fn=loss_fn,
    )  # fmt: skip
    log = RunLog(out, loop.start())
    write_config(out, cfg)

    @torch.no_grad()
    def evaluate() -> dict:
        if not eval_enc:
            return {}
        policy.eval()
        m = torch.cat([
            margins(policy, eval_enc[s : s + micro], eval_ref[s : s + micro])
            for s in range(0, len(eval_enc), micro)
        ])  # fmt: skip
        policy.train()
        return {"eval_accuracy": (m > 0).float().mean().item(), "eval_margin": m.mean().item()}

    def on_log(row: dict) -> None:
        row = {k: v for k, v in row.items() if v is not None}
        row.update({f"train_{k}": float(v) for k, v in stats.items()})
        if row["step"] == cfg.steps or (cfg.eval_every and row["step"] % cfg.eval_every == 0):
            row.update(evaluate())
        log.row(row)
        print_row(row)

    loop.on_log = on_log
    loop.run()
    save_final(policy, tokenizer, out)
    log.plot(["train_loss", "train_accuracy", "train_margin", "eval_accuracy"], "DPO")
    return log.rows()


@torch.no_grad()
def _reference(policy, enc, pad: int, micro: int) -> torch.Tensor:
    """(n, 2) log-prob sums of chosen and rejected under the starting policy."""
    was = policy.training
    policy.eval()
    out = []
    for s in range(0, len(enc), micro):
        items = enc[s : s + micro]
        prompts = [e[0] for e in items]
        out.append(torch.stack([
            _logp_sums(policy, prompts, [e[1] for e in items], pad),
            _logp_sums(policy, prompts, [e[2] for e in items], pad),
        ], dim=1).float().cpu())  # fmt: skip
    policy.train(was)
    return torch.cat(out) if out else torch.zeros(0, 2)
