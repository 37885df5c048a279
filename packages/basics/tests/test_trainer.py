import dataclasses
import json
import signal

import numpy as np
import pytest
import torch

from cs336_basics import TrainConfig, TrainingDiverged, load_trained_model, train, trainer
from cs336_basics.run_dir import RunDir
from cs336_common.nn import ModelConfig
from cs336_common.train.batches import RandomBatches
from cs336_common.train.loop import TrainLoop
from cs336_common.train.token_file import save_token_file

VOCAB = 64


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    folder = tmp_path_factory.mktemp("data")
    rng = np.random.default_rng()
    # a learnable sequence: mostly "next id = id + 1", with noise
    ids = np.cumsum(rng.choice([1, 1, 1, 2], size=30_000)) % VOCAB
    save_token_file(folder / "train.bin", ids[:25_000], VOCAB)
    save_token_file(folder / "val.bin", ids[25_000:], VOCAB)
    return folder


def _config(data, out, **overrides):
    model = ModelConfig(vocab_size=VOCAB, context_length=16, d_model=32, num_layers=2, num_heads=2)
    kw = dict(
        model=model,
        train_data=str(data / "train.bin"),
        val_data=str(data / "val.bin"),
        out_dir=str(out),
        batch_size=8,
        max_steps=24,
        lr=3e-3,
        warmup_steps=4,
        log_every=2,
        eval_every=4,
        eval_batches=2,
        checkpoint_every=8,
        seed=int(np.random.default_rng().integers(1000)),
    )
    return TrainConfig(**{**kw, **overrides})


def test_run_dir_contents_and_learning(data, tmp_path):
    cfg = _config(data, tmp_path / "run", max_steps=60)
    result = train(cfg, progress=False)
    run = RunDir(tmp_path / "run")
    rows = run.read_metrics()
    assert [r["step"] for r in rows] == list(range(2, 61, 2))
    assert set(rows[0]) == {
        "step", "tokens", "train_loss", "val_loss", "lr", "grad_norm", "tokens_per_s", "mfu",
        "wall_time_s",
    }  # fmt: skip
    assert rows[-1]["tokens"] == 60 * 8 * 16 == result.tokens
    assert rows[0]["mfu"] is None  # CPU: no known peak
    assert [r["val_loss"] is not None for r in rows] == [r["step"] % 4 == 0 for r in rows]
    # uniform guessing is ln(64) = 4.16; the +1 structure is learnable
    assert result.val_loss < rows[1]["val_loss"] - 0.3
    saved = json.loads(run.config.read_text())
    assert saved["model"]["d_model"] == 32 and saved["max_steps"] == 60
    assert [p.name for p in run.all_checkpoints()] == [
        f"step_{s:08d}.pt" for s in range(8, 61, 8)
    ] + ["step_00000060.pt"]
    assert run.latest_checkpoint().name == "step_00000060.pt"
    model = load_trained_model(run.path)
    assert not model.training
    x = torch.tensor(np.arange(16) % VOCAB)[None]
    assert (model(x).argmax(-1)[0, :-1] == (x[0, :-1] + 1) % VOCAB).float().mean() > 0.5


@pytest.mark.parametrize("stop", ["crash", "ctrl_c"])
def test_stopped_and_resumed_run_gives_the_same_losses(data, tmp_path, monkeypatch, stop):
    """A crash in step 13 resumes from the checkpoint of step 8; Ctrl-C during step 13
    lets the step finish, checkpoints it and resumes from there."""
    cfg = _config(data, tmp_path / "full", grad_accum_steps=2)
    train(cfg, progress=False)
    full = RunDir(cfg.out_dir).read_metrics()

    interrupted = _config(data, tmp_path / "part", grad_accum_steps=2, seed=cfg.seed)
    real_step, calls = TrainLoop.train_step, []

    def stop_in_step_13(self):
        calls.append(1)
        if len(calls) == 13 and stop == "crash":
            raise KeyboardInterrupt
        if len(calls) == 13:
            signal.raise_signal(signal.SIGINT)
        return real_step(self)

    monkeypatch.setattr(TrainLoop, "train_step", stop_in_step_13)
    with pytest.raises(KeyboardInterrupt):
        train(interrupted, progress=False)
    monkeypatch.setattr(TrainLoop, "train_step", real_step)
    run = RunDir(interrupted.out_dir)
    assert run.latest_checkpoint().name == (
        "step_00000008.pt" if stop == "crash" else "step_00000013.pt"
    )
    result = train(interrupted, resume=True, progress=False)
    resumed = run.read_metrics()
    steps = [r["step"] for r in full]
    assert [r["step"] for r in resumed if r["step"] != 13] == steps
    by_step = {r["step"]: r for r in resumed}
    # after a Ctrl-C at step 13 the row of step 14 averages step 14 alone, not 13 and 14
    for a in (r for r in full if not (stop == "ctrl_c" and r["step"] == 14)):
        b = by_step[a["step"]]
        assert a["train_loss"] == b["train_loss"] and a["val_loss"] == b["val_loss"], a["step"]
        assert a["grad_norm"] == b["grad_norm"] and a["lr"] == b["lr"]
    assert result.steps == 24
    assert resumed[-1]["wall_time_s"] >= resumed[6]["wall_time_s"]


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(data, tmp_path, monkeypatch):
    cfg = _config(data, tmp_path / "run")
    real_step, calls = TrainLoop.train_step, []

    def nan_from_step_11(self):
        calls.append(1)
        loss, norm = real_step(self)
        return (loss * torch.nan if len(calls) >= 11 else loss), norm

    monkeypatch.setattr(TrainLoop, "train_step", nan_from_step_11)
    with pytest.raises(TrainingDiverged, match=r"step 11: loss nan.*step_00000008\.pt"):
        train(cfg, progress=False)
    run = RunDir(cfg.out_dir)
    assert [p.name for p in run.all_checkpoints()] == ["step_00000008.pt"]
    assert run.read_metrics()[-1]["step"] == 10


def test_refuses_to_overwrite_a_run_and_keeps_the_newest_checkpoints(data, tmp_path):
    cfg = _config(data, tmp_path / "run", max_steps=8, checkpoint_every=2, keep_checkpoints=2)
    train(cfg, progress=False)
    assert [p.name for p in RunDir(cfg.out_dir).all_checkpoints()] == [
        "step_00000006.pt",
        "step_00000008.pt",
    ]
    with pytest.raises(FileExistsError, match="--resume"):
        train(cfg, progress=False)


def test_grad_accumulation_equals_the_big_batch(data, tmp_path):
    """One step of 2 micro-batches of 4 = one step of a batch of 8 drawn from the same
    generator (numpy draws 4 + 4 starts exactly as it draws 8). With eps = 1 the first
    AdamW update is about lr·g, so equal weights mean equal gradients."""
    common = dict(max_steps=1, warmup_steps=0, val_data=None, checkpoint_every=1, seed=3)
    common.update(lr=1.0, eps=1.0, weight_decay=0.0, grad_clip=0.0)
    train(_config(data, tmp_path / "big", batch_size=8, **common), progress=False)
    train(
        _config(data, tmp_path / "acc", batch_size=4, grad_accum_steps=2, **common), progress=False
    )
    big, acc = load_trained_model(tmp_path / "big"), load_trained_model(tmp_path / "acc")
    for p, q in zip(big.parameters(), acc.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=0, atol=1e-6)
    assert RunDir(tmp_path / "big").read_metrics()[0]["train_loss"] == pytest.approx(
        RunDir(tmp_path / "acc").read_metrics()[0]["train_loss"], abs=1e-6
    )


def test_wandb_logging_is_optional(data, tmp_path, monkeypatch):
    import sys
    import types

    logged = []
    run = types.SimpleNamespace(log=lambda row, step: logged.append(step), finish=lambda: None)
    fake = types.SimpleNamespace(init=lambda **kw: run)
    monkeypatch.setitem(sys.modules, "wandb", fake)
    train(_config(data, tmp_path / "a", max_steps=4, wandb=True), progress=False)
    assert logged == [2, 4]
    monkeypatch.setitem(sys.modules, "wandb", None)  # not installed
    with pytest.warns(UserWarning, match="wandb is not installed"):
        train(_config(data, tmp_path / "b", max_steps=4, wandb=True), progress=False)
    assert RunDir(tmp_path / "b").read_metrics()[-1]["step"] == 4


def _same_rows(a: RunDir, b: RunDir, tol: float = 0.0) -> None:
    rows_a, rows_b = a.read_metrics(), b.read_metrics()
    assert [r["step"] for r in rows_a] == [r["step"] for r in rows_b]
    for ra, rb in zip(rows_a, rows_b, strict=True):
        assert (ra["val_loss"] is None) == (rb["val_loss"] is None)
        for key in ("train_loss", "val_loss", "grad_norm"):
            if ra[key] is not None:
                assert ra[key] == pytest.approx(rb[key], rel=tol, abs=tol), (ra["step"], key)


def test_token_file_in_device_memory_gives_the_same_run(data, tmp_path, monkeypatch):
    """The windows are gathered from a device copy of the token file (where it fits on
    a GPU): the same batches as from the memmap, so the same run, bit for bit."""
    host = _config(data, tmp_path / "host")
    train(host, progress=False)
    made = []

    def on_device_batches(*args, **kwargs):
        made.append(kwargs.get("on_device"))
        return RandomBatches(*args, **{**kwargs, "on_device": True})

    monkeypatch.setattr(trainer, "RandomBatches", on_device_batches)
    train(_config(data, tmp_path / "device", seed=host.seed), progress=False)
    assert made == [False, None]  # the training draws (not on the CPU by default), validation
    _same_rows(RunDir(tmp_path / "host"), RunDir(tmp_path / "device"))


@pytest.mark.gpu
@pytest.mark.parametrize("attention, fused", [("naive", False), ("flash", False), ("flash", True)])
def test_cuda_graphs_train_like_the_eager_step(data, tmp_path, attention, fused):
    """compile + cuda_graphs (graphs replayed for the training and the evaluation
    passes, checkpoints between them) follows the eager run's losses in fp32, also on
    the flash backend (Triton kernels, RoPE fused) with the fused LM head + loss, as the
    tinystories config trains."""
    common = dict(device="cuda", precision="fp32", seed=5, max_steps=16)
    eager = _config(data, tmp_path / "eager", **common)
    train(eager, progress=False)
    model = dataclasses.replace(eager.model, attention_backend=attention)
    graphs = _config(
        data,
        tmp_path / "graphs",
        model=model,
        compile=True,
        cuda_graphs=True,
        fused_loss=fused,
        **common,
    )
    train(graphs, progress=False)
    _same_rows(RunDir(eager.out_dir), RunDir(graphs.out_dir), tol=2e-2)


def test_fused_loss_trains_like_the_separate_head(data, tmp_path, capsys):
    """fused_loss = true: the same run up to float32 rounding (the fused op sums the
    softmax and the head's gradients in another order), and the banner says so."""
    plain = _config(data, tmp_path / "plain", max_steps=12)
    train(plain, progress=True)
    assert "fused LM head" not in capsys.readouterr().out
    fused = _config(data, tmp_path / "fused", max_steps=12, seed=plain.seed, fused_loss=True)
    train(fused, progress=True)
    banner = capsys.readouterr().out.splitlines()[0]
    assert banner.startswith("training ") and "(fp32, fused LM head + loss)" in banner
    _same_rows(RunDir(plain.out_dir), RunDir(fused.out_dir), tol=2e-5)  # measured: <= 5e-7
