"""Expert iteration: sample ``samples_per_question`` responses per question, keep the
ones the reward function accepts, fine-tune on them with SFT, repeat.

Each iteration ``k`` is an SFT run in ``out/ei_k`` whose ``final/`` is the next
iteration's starting policy, and a row in ``out/ei.jsonl``; a resumed run skips the
iterations that have their row (or their ``final/``) and starts at the first other one.
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from cs336_alignment.sft import SFTConfig, train_sft


@dataclass
class EIConfig:
    ei_steps: int = 5
    questions_per_step: int = 512
    samples_per_question: int = 4
    sampling_temperature: float = 1.0
    sampling_max_tokens: int = 1024
    sft_epochs: int = 1
    seed: int = 0


def finished_iterations(out: Path) -> set[int]:
    """The iterations that have their row in ``out/ei.jsonl``."""
    from cs336_alignment.jsonl import read_jsonl

    log = out / "ei.jsonl"
    if not log.is_file() or not log.stat().st_size:
        return set()
    return {int(row["ei_step"]) for row in read_jsonl(log) if "ei_step" in row}


def expert_iteration(
    policy,
    tokenizer,
    questions: list[dict],
    eval_examples: list[dict],
    cfg: EIConfig,
    sft_cfg: SFTConfig,
    out: Path,
    *,
    generator: Any = None,
    reward_fn=None,
) -> list[dict]:
    """Run into ``out``; returns one summary row per iteration (also in ei.jsonl)."""
    from cs336_alignment.generation import make_generator, response_text
    from cs336_alignment.grader import r1_zero_reward_fn
    from cs336_alignment.policy_io import load_policy
    from cs336_alignment.rl_common import sampling_params

    reward_fn = reward_fn or r1_zero_reward_fn
    out.mkdir(parents=True, exist_ok=True)
    generator = generator or make_generator("engine", policy, tokenizer)
    rows, finished = [], finished_iterations(out)
    for k in range(cfg.ei_steps):
        step_dir = out / f"ei_{k}"
        if k in finished or (step_dir / "final").is_dir():  # done earlier: its policy
            if (step_dir / "final").is_dir():  # (none when it kept no sample)
                trained, _ = load_policy(step_dir / "final", next(policy.parameters()).device)
                policy.load_state_dict(trained.state_dict())
            continue
        t0 = time.perf_counter()
        rng = random.Random(cfg.seed * 1000 + k)
        batch = rng.sample(questions, min(cfg.questions_per_step, len(questions)))
        params = sampling_params(
            cfg.sampling_max_tokens, cfg.sampling_temperature, cfg.samples_per_question,
            seed=cfg.seed * 1000 + k,
        )  # fmt: skip
        policy.eval()
        if getattr(generator, "model", None) is not policy:
            generator.load_weights(policy)
        outs = generator.generate([q["prompt"] for q in batch], params)
        kept = []
        for q, completions in zip(batch, outs, strict=True):
            for c in completions:
                text = response_text(c, params.stop)
                if reward_fn(text, q["ground_truth"])["reward"] > 0:
                    kept.append({"prompt": q["prompt"], "response": text})
        row = {"ei_step": k, "sampled": len(batch) * cfg.samples_per_question,
               "kept": len(kept), "sample_s": time.perf_counter() - t0}  # fmt: skip
        if kept:
            steps = max(1, cfg.sft_epochs * len(kept) // sft_cfg.batch_size)
            policy.train()
            history = train_sft(
                policy, tokenizer, kept, eval_examples, replace(sft_cfg, steps=steps),
                step_dir, generator=generator, title=f"expert iteration {k}",
                resume=(step_dir / "checkpoints").is_dir(),  # an interrupted iteration
            )  # fmt: skip
            row.update({k2: v for k2, v in history[-1].items() if k2.startswith("eval_")})
        rows.append(row)
        with (out / "ei.jsonl").open("a", encoding="utf-8") as f:
            f.write(json.dumps(row) + "\n")
        print(json.dumps(row), flush=True)
    return rows
