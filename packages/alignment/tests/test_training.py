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
    # resumed: iteration 0 (its row is in ei.jsonl, though it kept nothing to train on)
    # is not sampled again; only iteration 1 runs
    rows = expert_iteration(
        model, tok, _questions(8, 4), [], EIConfig(ei_steps=2, questions_per_step=4,
        samples_per_question=2, sampling_max_tokens=6), SFTConfig(), tmp_path / "none",
        reward_fn=lambda r, t: {"reward": 0.0},
    )  # fmt: skip
    assert [r["ei_step"] for r in rows] == [1]
    log = (tmp_path / "none" / "ei.jsonl").read_text().splitlines()
    assert [json.loads(x)["ei_step"] for x in log] == [0, 1]


def test_offline_demo_runs_end_to_end(tmp_path):
    from cs336_alignment.demo import run_demo

    summary = run_demo("test", tmp_path, torch.device("cpu"))
    for stage in ("pretrained", "sft", "grpo"):
        assert 0.0 <= summary["results"][stage]["accuracy"] <= 1.0
    assert (tmp_path / "pipeline.png").is_file()
    assert (tmp_path / "grpo" / "final" / "cs336_model.json").is_file()


def test_grpo_drives_a_hugging_face_model(tmp_path, make_qwen2, hf_tokenizer):
    from cs336_alignment.generation import HFGenerator

    model = make_qwen2(4).train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    qs = [{"prompt": f"What is {i} + 1?", "ground_truth": str(i + 1)} for i in range(8)]
    rows = train_grpo(
        model, hf_tokenizer, qs, qs[:2],
        GRPOConfig(n_grpo_steps=1, **{**GRPO, "checkpoint_every": 0, "loss_type": "no_baseline"}),
        tmp_path, generator=HFGenerator(model, hf_tokenizer),
        reward_fn=lambda r, t: {"reward": float(len(r) % 2)},
    )  # fmt: skip
    assert rows[-1]["step"] == 2 and "eval_accuracy" in rows[-1]
    assert any(not torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert (tmp_path / "final" / "config.json").is_file()


def test_rollout_batches_hold_what_was_sampled():
    """Each epoch holds every sampled response once; old log-probs (a full forward pass)
    equal the engine's sampling log-probs; advantages are the group-normalised rewards."""
    from cs336_alignment.generation import make_generator
    from cs336_alignment.grpo import RolloutBatches

    model, tok = _model(5), byte_tokenizer()
    cfg = GRPOConfig(rollout_batch_size=8, group_size=4, sampling_max_tokens=6,
                     train_batch_size=4, gradient_accumulation_steps=1,
                     epochs_per_rollout_batch=2, loss_type="grpo_clip")  # fmt: skip
    gen = make_generator("engine", model, tok)
    sampled = []
    generate = gen.generate
    gen.generate = lambda p, params: sampled.append(generate(p, params)) or sampled[-1]
    reward = lambda r, t: {"reward": float(len(r) % 3 == 0)}  # noqa: E731
    batches = RolloutBatches(model, gen, tok, _questions(16, 6), reward, cfg)
    micro = [next(batches) for _ in range(4)]
    assert not batches.buffer and len(sampled) == 1
    completions = [c for per_prompt in sampled[0] for c in per_prompt]
    rewards = torch.tensor([float(len(c.text) % 3 == 0) for c in completions]).view(2, 4)
    want_adv = (rewards - rewards.mean(1, keepdim=True)) / (rewards.std(1, keepdim=True) + 1e-6)
    for epoch in (micro[:2], micro[2:]):  # 8 responses / 4 per micro-batch
        used = []
        for x, y, mask, adv, raw, old in epoch:
            for i in range(len(x)):
                ids = y[i][mask[i]].tolist()
                j = next(k for k, c in enumerate(completions) if c.ids == ids and k not in used)
                used.append(j)
                got = old[i][mask[i]].tolist()
                assert got == pytest.approx(completions[j].logprobs, abs=1e-4)
                assert adv[i, 0].item() == pytest.approx(want_adv.flatten()[j].item(), abs=1e-5)
                assert raw[i, 0].item() == rewards.flatten()[j].item()
        assert sorted(used) == list(range(8))
