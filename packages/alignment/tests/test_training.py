"""The training loops end to end on tiny models: SFT, GRPO (and exact resume), expert
iteration, DPO, and the offline pipeline demo."""

import json

import pytest
import torch

pytest.importorskip("cs336_common.engine")
pytest.importorskip("cs336_common.train.loop")

from cs336_alignment.arithmetic import make_problems, task_prompt
from cs336_alignment.demo import byte_tokenizer
from cs336_alignment.grpo import GRPOConfig, train_grpo
from cs336_alignment.sft import SFTConfig, train_sft


def _model(seed=0):
    from cs336_common import TransformerLM

    torch.manual_seed(seed)
    return TransformerLM(257, 256, 32, 1, 2, 64)


def _questions(n, seed):
    return [{"prompt": task_prompt(p.question), "ground_truth": p.answer,
             "response": p.solution} for p in make_problems(n, seed)]  # fmt: skip


GRPO = dict(rollout_batch_size=8, group_size=4, sampling_max_tokens=12, train_batch_size=4,
            gradient_accumulation_steps=2, eval_every=0, checkpoint_every=1, learning_rate=1e-3,
            loss_type="grpo_clip", epochs_per_rollout_batch=1)  # fmt: skip


def test_sft_lowers_the_loss_and_writes_the_run(tmp_path):
    model, tok = _model(), byte_tokenizer()
    rows = train_sft(
        model, tok, _questions(16, 1), _questions(4, 2),
        SFTConfig(steps=6, learning_rate=3e-3, batch_size=8, gradient_accumulation_steps=2,
                  eval_every=3, eval_max_tokens=8, checkpoint_every=3),
        tmp_path,
    )  # fmt: skip
    losses = [r["train_loss"] for r in rows if "train_loss" in r]
    assert losses[-1] < losses[0]
    assert "eval_accuracy" in rows[0] and "eval_accuracy" in rows[-1]
    for name in ("metrics.jsonl", "generations.jsonl", "curves.png", "final/model.safetensors"):
        assert (tmp_path / name).is_file(), name


def test_grpo_resume_is_exact(tmp_path):
    tok, qs = byte_tokenizer(), _questions(32, 3)
    full = _model(1)
    rows = train_grpo(full, tok, qs, [], GRPOConfig(n_grpo_steps=2, **GRPO), tmp_path / "a")
    assert {"time_rollout_s", "time_reward_s", "time_old_logprobs_s", "time_train_s",
            "rollout_reward_mean", "clip_fraction"} <= set(rows[-1])  # fmt: skip
    part = _model(1)
    train_grpo(part, tok, qs, [], GRPOConfig(n_grpo_steps=1, **GRPO), tmp_path / "b")
    resumed = _model(7)  # weights come from the checkpoint
    train_grpo(resumed, tok, qs, [], GRPOConfig(n_grpo_steps=2, **GRPO), tmp_path / "b",
               resume=True)  # fmt: skip
    for k, v in full.state_dict().items():
        torch.testing.assert_close(resumed.state_dict()[k], v, msg=k)
    lines = (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()
    steps = [json.loads(line)["step"] for line in lines]
    assert steps == sorted(set(steps))


def test_grpo_refuses_to_overwrite_a_run(tmp_path):
    tok, qs = byte_tokenizer(), _questions(32, 3)
    train_grpo(_model(), tok, qs, [], GRPOConfig(n_grpo_steps=1, **GRPO), tmp_path)
    with pytest.raises(FileExistsError):
        train_grpo(_model(), tok, qs, [], GRPOConfig(n_grpo_steps=1, **GRPO), tmp_path)


def test_dpo_prefers_the_chosen_responses(tmp_path):
    from cs336_alignment.dpo_train import DPOConfig, train_dpo

    pairs = [{"prompt": f"Say {w}.", "chosen": f"{w}!", "rejected": "No."}
             for w in ("yes", "hello", "blue", "cat")]  # fmt: skip
    rows = train_dpo(
        _model(2), byte_tokenizer(), pairs, pairs,
        DPOConfig(steps=8, beta=0.5, learning_rate=3e-3, batch_size=4,
                  gradient_accumulation_steps=2, eval_every=4, checkpoint_every=0),
        tmp_path,
    )  # fmt: skip
    assert rows[-1]["eval_accuracy"] == 1.0
    assert rows[-1]["train_loss"] < rows[0]["train_loss"]


def test_expert_iteration_keeps_only_correct_samples(tmp_path):
    from cs336_alignment.expert_iteration import EIConfig, expert_iteration

    model, tok = _model(3), byte_tokenizer()
    # a reward that accepts everything, so SFT runs; and one that accepts nothing
    rows = expert_iteration(
        model, tok, _questions(8, 4), [], EIConfig(ei_steps=1, questions_per_step=4,
        samples_per_question=2, sampling_max_tokens=6),
        SFTConfig(batch_size=4, gradient_accumulation_steps=1, checkpoint_every=0),
        tmp_path / "all", reward_fn=lambda r, t: {"reward": 1.0},
    )  # fmt: skip
    assert rows[0]["kept"] == rows[0]["sampled"] == 8
    assert (tmp_path / "all" / "ei_0" / "final").is_dir()
    rows = expert_iteration(
        model, tok, _questions(8, 4), [], EIConfig(ei_steps=1, questions_per_step=4,
        samples_per_question=2, sampling_max_tokens=6), SFTConfig(), tmp_path / "none",
        reward_fn=lambda r, t: {"reward": 0.0},
    )  # fmt: skip
    assert rows[0]["kept"] == 0


def test_offline_demo_runs_end_to_end(tmp_path):
    from cs336_alignment.demo import run_demo

    summary = run_demo("test", tmp_path, torch.device("cpu"))
    for stage in ("pretrained", "sft", "grpo"):
        assert 0.0 <= summary["results"][stage]["accuracy"] <= 1.0
    assert (tmp_path / "pipeline.png").is_file()
    assert (tmp_path / "grpo" / "final" / "cs336_model.json").is_file()
