"""`TrainLoop` against a hand-written float64 loop built from PyTorch's own optimizer,
clipping and loss; resume, fallback and stop behaviour."""

import itertools
import math
import signal

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from cs336_common.nn import TransformerLM
from cs336_common.train import (
    AdamW,
    CheckpointDir,
    Interrupted,
    LoopConfig,
    RandomBatches,
    TrainingDiverged,
    TrainLoop,
    fused_lm_loss,
    get_lr_cosine_schedule,
    lm_loss,
)

VOCAB, CTX = 32, 8


def _model(seed=0):
    torch.manual_seed(seed)
    return TransformerLM(
        vocab_size=VOCAB, context_length=CTX, d_model=16, num_layers=2, num_heads=2, d_ff=24
    ).double()


def _data(seed=0):
    return np.random.default_rng(seed).integers(0, VOCAB, size=2000).astype(np.uint16)


def _schedule(step):
    return get_lr_cosine_schedule(step, 1e-2, 1e-3, 3, 12)


def _adamw(model):
    return AdamW(model.parameters(), lr=1e-2, weight_decay=0.1)


def _loop(tmp_path=None, data=None, model=None, **config):
    model = _model() if model is None else model
    kw = dict(max_steps=12, grad_accum_steps=2, grad_clip=0.5, log_every=1)
    if tmp_path is not None:
        kw["checkpoint_dir"] = str(tmp_path / "ckpt")
    batches = RandomBatches(_data() if data is None else data, 4, CTX, "cpu", seed=7)
    rows = []
    loop = TrainLoop(
        model,
        _adamw,
        batches,
        LoopConfig(**{**kw, **config}),
        lr_schedule=_schedule,
        on_log=rows.append,
    )
    return loop, rows


def test_matches_a_plain_pytorch_loop():
    """Same batches, torch.optim.AdamW, clip_grad_norm_ and F.cross_entropy by hand."""
    loop, rows = _loop()
    result = loop.run()

    model = _model()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.1, eps=1e-8)
    batches = RandomBatches(_data(), 4, CTX, "cpu", seed=7)
    losses = []
    for step in range(12):
        for g in opt.param_groups:
            g["lr"] = _schedule(step)
        total = 0.0
        for _ in range(2):
            x, y = next(batches)
            loss = F.cross_entropy(model(x).reshape(-1, VOCAB), y.reshape(-1))
            (loss / 2).backward()
            total += loss.item() / 2
        torch.nn.utils.clip_grad_norm_(model.parameters(), 0.5)
        opt.step()
        opt.zero_grad()
        losses.append(total)

    # the clipping norm is computed in float32 (as in a bf16 run), hence not 1e-12
    np.testing.assert_allclose([r["train_loss"] for r in rows], losses, rtol=1e-6)
    for p, q in zip(loop.model.parameters(), model.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=1e-6, atol=1e-8)
    assert result.steps == 12 and result.tokens == 12 * 2 * 4 * CTX == rows[-1]["tokens"]
    assert [r["lr"] for r in rows] == [_schedule(s) for s in range(12)]


def test_masked_loss_trains_on_masked_positions_only():
    """With a mask, tokens outside it do not matter: the same run with those targets
    scrambled gives the same weights."""
    rng = np.random.default_rng(3)
    x = torch.from_numpy(rng.integers(0, VOCAB, (4, CTX)))
    y = torch.from_numpy(rng.integers(0, VOCAB, (4, CTX)))
    mask = torch.from_numpy(rng.random((4, CTX)) < 0.5)
    scrambled = torch.where(mask, y, (y + 5) % VOCAB)
    models = []
    for targets in (y, scrambled):
        model = _model()
        TrainLoop(model, _adamw, itertools.repeat((x, targets, mask)), LoopConfig(3)).run()
        models.append(model)
    for p, q in zip(*(m.parameters() for m in models), strict=True):
        assert torch.equal(p, q)
    # and the loss the loop logs is the mean over masked positions
    rows = []
    TrainLoop(
        _model(), _adamw, itertools.repeat((x, y, mask)), LoopConfig(1), on_log=rows.append
    ).run()
    with torch.no_grad():
        nll = F.cross_entropy(_model()(x).transpose(1, 2), y, reduction="none")
    assert rows[0]["train_loss"] == pytest.approx((nll[mask]).mean().item(), rel=1e-12)


def test_resume_is_exact_and_skips_a_corrupt_checkpoint(tmp_path, capsys):
    full, full_rows = _loop()
    full.run()

    first, _ = _loop(tmp_path, max_steps=8, checkpoint_every=4)
    first.run()
    ckpts = CheckpointDir(tmp_path / "ckpt")
    assert [p.name for p in ckpts.all()] == ["step_00000004.pt", "step_00000008.pt"]
    # a kill during a save leaves a temporary file; the latest checkpoint is truncated
    orphan = ckpts.path / ".step_00000012.pt.0123456789ab.tmp"
    orphan.write_bytes(b"partial")
    latest = ckpts.file(8)
    latest.write_bytes(latest.read_bytes()[:1000])

    resumed, rows = _loop(tmp_path, resume=True)
    assert resumed.start() == 4
    assert "step_00000008.pt does not load" in capsys.readouterr().err
    assert (ckpts.path / "step_00000008.pt.corrupt").is_file() and not orphan.exists()
    resumed.run()
    assert [r["train_loss"] for r in rows] == [r["train_loss"] for r in full_rows[4:]]
    for p, q in zip(resumed.model.parameters(), full.model.parameters(), strict=True):
        assert torch.equal(p, q)


def test_resume_refuses_a_folder_whose_checkpoints_all_fail_to_load(tmp_path, capsys):
    from cs336_common.errors import InputError

    _loop(tmp_path, max_steps=8, checkpoint_every=4)[0].run()
    ckpts = CheckpointDir(tmp_path / "ckpt")
    for path in ckpts.all():
        path.write_bytes(b"not a checkpoint")
    with pytest.raises(InputError, match="no checkpoint loads"):
        _loop(tmp_path, resume=True)[0].start()
    assert len(list(ckpts.path.glob("*.corrupt"))) == 2
    # resuming a folder that never held a checkpoint starts the run
    assert _loop(tmp_path / "new", resume=True)[0].start() == 0


def test_refuses_a_latest_pointer_outside_the_folder(tmp_path):
    loop, _ = _loop(tmp_path, max_steps=2)
    loop.run()
    (tmp_path / "ckpt" / "latest").write_text("../../other/step_00000002.pt\n")
    with pytest.raises(ValueError, match="not a checkpoint of this run"):
        _loop(tmp_path, resume=True)[0].start()


def test_refuses_to_start_over_checkpoints_and_init_from_loads_weights_only(tmp_path):
    loop, _ = _loop(tmp_path, max_steps=2)
    loop.run()
    with pytest.raises(FileExistsError, match="already holds checkpoints"):
        _loop(tmp_path, max_steps=2)[0].start()
    tuned, _ = _loop(model=_model(seed=1), init_from=str(tmp_path / "ckpt"))
    assert tuned.start() == 0
    for p, q in zip(tuned.model.parameters(), loop.model.parameters(), strict=True):
        assert torch.equal(p, q)
    assert tuned.optimizer.state == {}  # a fresh optimizer


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_signal_finishes_the_step_and_checkpoints(tmp_path, signum):
    loop, rows = _loop(tmp_path, checkpoint_every=100)
    real_step = loop.train_step

    def step_with_signal():
        if loop.step == 5:
            signal.raise_signal(signum)
        return real_step()

    loop.train_step = step_with_signal
    with pytest.raises(Interrupted) as stopped:
        loop.run()
    assert stopped.value.exit_code == 128 + signum
    assert rows[-1]["step"] == 6
    assert [p.name for p in CheckpointDir(tmp_path / "ckpt").all()] == ["step_00000006.pt"]
    assert signal.getsignal(signum) is not None  # handlers restored


def test_diverged_loss_names_the_step():
    loop, _ = _loop(log_every=4)
    real_step = loop.train_step

    def nan_at_6():
        loss, norm = real_step()
        return (loss * math.nan if loop.step == 5 else loss), norm

    loop.train_step = nan_at_6
    with pytest.raises(TrainingDiverged, match="diverged at step 6: loss nan"):
        loop.run()


def test_config_checks():
    with pytest.raises(ValueError, match="grad_accum_steps must be >= 1"):
        LoopConfig(max_steps=3, grad_accum_steps=0)
    with pytest.raises(ValueError, match="precision must be fp32 or bf16"):
        LoopConfig(max_steps=3, precision="fp16")
    with pytest.raises(ValueError, match="resume needs a checkpoint_dir"):
        LoopConfig(max_steps=3, resume=True)


def _lm_and_batch(seed=0):
    torch.manual_seed(seed)
    model = TransformerLM(
        vocab_size=VOCAB, context_length=CTX, d_model=16, num_layers=2, num_heads=2, d_ff=24
    )
    x, y = torch.randint(0, VOCAB, (2, 3, CTX)).unbind(0)
    return model, x, y


def test_fused_lm_loss_matches_lm_loss_in_value_and_gradients():
    """float32 on both sides: the same math summed in another order (the fused op's
    softmax, the weight's gradient as one GEMM over tokens), so they agree to float32
    rounding over a 32-way softmax and a 2-layer backward (1e-5 relative), not bitwise."""
    model, x, y = _lm_and_batch()
    params = list(model.parameters())
    fused = fused_lm_loss(model, (x, y))
    fused_grads = torch.autograd.grad(fused, params)
    plain = lm_loss(model, (x, y))
    plain_grads = torch.autograd.grad(plain, params)
    # lm_loss itself against PyTorch's cross-entropy, so neither side is only self-checked
    torch.testing.assert_close(plain, F.cross_entropy(model(x).flatten(0, 1), y.flatten()))
    torch.testing.assert_close(fused, plain, rtol=1e-5, atol=1e-6)
    for a, b in zip(fused_grads, plain_grads, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_fused_lm_loss_of_a_masked_batch_is_lm_losss_masked_mean():
    model, x, y = _lm_and_batch(1)
    mask = torch.rand(y.shape) < 0.4
    fused = fused_lm_loss(model, (x, y, mask))
    assert torch.equal(fused, lm_loss(model, (x, y, mask)))
    nll = F.cross_entropy(model(x).flatten(0, 1), y.flatten(), reduction="none")
    torch.testing.assert_close(fused, nll[mask.flatten()].mean())


def test_fused_lm_loss_needs_features_and_lm_head():
    x = torch.zeros(1, CTX, dtype=torch.long)
    with pytest.raises(TypeError, match=r"features\(x\) and lm_head.weight .*got a Embedding"):
        fused_lm_loss(torch.nn.Embedding(VOCAB, 4), (x, x))
