"""Faults a cluster inflicts on a run, injected for real: SIGTERM to a training process,
SIGKILL in the middle of a checkpoint write, a second process on the same run
directory; and resumes that would make a run disagree with its checkpoints."""

import json
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from cs336_basics import TrainConfig, train
from cs336_basics.cli import main
from cs336_basics.run_dir import RunDir
from cs336_common.errors import InputError
from cs336_common.nn import ModelConfig
from cs336_common.train.token_file import save_token_file

VOCAB = 40


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    folder = tmp_path_factory.mktemp("data")
    ids = np.random.default_rng(0).integers(0, VOCAB, size=6000)
    save_token_file(folder / "train.bin", ids, VOCAB)
    return folder


def _config(data, out, **overrides) -> TrainConfig:
    model = ModelConfig(vocab_size=VOCAB, context_length=8, d_model=16, num_layers=1, num_heads=2)
    kw = dict(
        model=model,
        train_data=str(data / "train.bin"),
        out_dir=str(out),
        batch_size=4,
        max_steps=6,
        warmup_steps=1,
        log_every=1,
        checkpoint_every=2,
        seed=3,
    )
    return TrainConfig(**{**kw, **overrides})


def _toml(config: TrainConfig, path) -> str:
    """``config`` as a TOML file (JSON values are valid TOML values for these fields)."""
    d = config.to_dict()
    model = d.pop("model")
    top = [f"{k} = {json.dumps(v)}" for k, v in d.items() if v is not None]
    lines = [*top, "[model]", *(f"{k} = {json.dumps(v)}" for k, v in model.items())]
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def _wait_for(predicate, proc, timeout=120.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        if proc.poll() is not None:
            raise AssertionError(f"training exited early: {proc.communicate()}")
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError("timed out waiting for the training process")
        time.sleep(0.1)


def test_sigterm_checkpoints_and_exits_143_and_the_lock_holds_meanwhile(data, tmp_path, capsys):
    cfg = _config(data, tmp_path / "run", max_steps=100_000, checkpoint_every=100_000)
    argv = ["train", _toml(cfg, tmp_path / "c.toml"), "--no-progress"]
    code = f"from cs336_basics.cli import main; raise SystemExit(main({argv!r}))"
    proc = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    run = RunDir(cfg.out_dir)
    _wait_for(lambda: len(run.read_metrics()) >= 3, proc)

    # a second run into the same directory is refused, naming the first
    assert main(argv) == 1
    assert f"in use by process {proc.pid}" in capsys.readouterr().err

    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert "SIGTERM: stopping after this step" in out and "--resume" in out
    stopped = run.read_metrics()[-1]["step"]
    assert [p.name for p in run.all_checkpoints()] == [f"step_{stopped:08d}.pt"]

    # the lock died with the process: resuming (and finishing) works
    more = ["--set", f"max_steps={stopped + 2}", "--allow-schedule-change", "--no-progress"]
    assert main(["train", "--resume", str(run.path), *more]) == 0
    steps = [r["step"] for r in run.read_metrics()]
    assert steps == list(range(1, stopped + 3))


_KILL_IN_SECOND_SAVE = textwrap.dedent(
    """
    import os, signal, sys, torch
    from cs336_basics import TrainConfig, train
    real_save, saves = torch.save, []

    def save_then_die(obj, f, *args, **kwargs):
        saves.append(f)
        if len(saves) == 2:  # half a checkpoint on disk, then the machine goes away
            with open(f, "wb") as fh:
                fh.write(b"PK" + bytes(1000))
            os.kill(os.getpid(), signal.SIGKILL)
        return real_save(obj, f, *args, **kwargs)

    torch.save = save_then_die
    train(TrainConfig.from_json(sys.stdin.read()), progress=False)
    """
)


def test_kill_during_a_checkpoint_write_resumes_exactly(data, tmp_path):
    cfg = _config(data, tmp_path / "run")
    proc = subprocess.run(
        [sys.executable, "-c", _KILL_IN_SECOND_SAVE],
        input=cfg.to_json(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    run = RunDir(cfg.out_dir)
    orphans = list(run.checkpoints.glob(".step_00000004.pt.*.tmp"))
    assert len(orphans) == 1  # what a kill leaves behind
    assert run.latest_checkpoint().name == "step_00000002.pt"

    result = train(cfg, resume=True, progress=False)
    assert result.steps == 6
    assert not list(run.checkpoints.glob(".*.tmp"))
    reference = _config(data, tmp_path / "reference")
    train(reference, progress=False)
    assert _same_except_time(run.read_metrics(), RunDir(reference.out_dir).read_metrics())


def _same_except_time(a: list[dict], b: list[dict]) -> bool:
    drop = ("tokens_per_s", "wall_time_s", "mfu")
    return [{k: v for k, v in r.items() if k not in drop} for r in a] == [
        {k: v for k, v in r.items() if k not in drop} for r in b
    ]


def test_resume_refuses_changes_that_disagree_with_the_checkpoints(data, tmp_path):
    cfg = _config(data, tmp_path / "run", max_steps=4)
    train(cfg, progress=False)
    run = RunDir(cfg.out_dir)
    saved = run.config.read_text()

    wider = _config(data, cfg.out_dir, max_steps=4, model=ModelConfig(
        vocab_size=VOCAB, context_length=8, d_model=32, num_layers=1, num_heads=2))  # fmt: skip
    with pytest.raises(InputError, match=r"model\.d_model 16 -> 32.*model and data"):
        train(wider, resume=True, progress=False)
    with pytest.raises(InputError, match=r"batch_size 4 -> 8, seed 3 -> 4"):
        train(_config(data, cfg.out_dir, max_steps=4, batch_size=8, seed=4), resume=True)
    with pytest.raises(InputError, match=r"lr 0\.001 -> 0\.01.*--allow-schedule-change"):
        train(_config(data, cfg.out_dir, max_steps=4, lr=1e-2), resume=True)
    with pytest.raises(InputError, match="at step 4, past the 3 steps"):
        train(_config(data, cfg.out_dir, max_steps=3), resume=True, allow_schedule_change=True)
    assert run.config.read_text() == saved  # nothing rewritten

    # operational settings may change; a finished run says so and trains nothing
    done = train(_config(data, cfg.out_dir, max_steps=4, log_every=2), resume=True)
    assert done.already_finished and done.steps == 4
    assert [p.name for p in run.all_checkpoints()] == ["step_00000002.pt", "step_00000004.pt"]


def test_token_file_of_another_vocabulary_is_refused(data, tmp_path):
    bigger = ModelConfig(vocab_size=64, context_length=8, d_model=16, num_layers=1, num_heads=2)
    with pytest.raises(InputError, match=r"vocabulary of 40 tokens, but model\.vocab_size is 64"):
        train(_config(data, tmp_path / "run", model=bigger), progress=False)
    assert not RunDir(tmp_path / "run").config.exists()


def test_tokenizer_of_another_vocabulary_is_refused(data, tmp_path):
    from cs336_common.tokenizer import Tokenizer

    Tokenizer({i: bytes([i]) for i in range(256)}, []).save(tmp_path / "tok")
    cfg = _config(data, tmp_path / "run", tokenizer=str(tmp_path / "tok"))
    with pytest.raises(InputError, match=r"tok has 256 tokens, but model\.vocab_size is 40"):
        train(cfg, progress=False)
    assert not RunDir(cfg.out_dir).config.exists()


def test_sweep_values_cannot_leave_the_run_directory(data, tmp_path, capsys):
    path = _toml(_config(data, tmp_path / "runs"), tmp_path / "c.toml")
    assert main(["train", path, "--sweep", "run_name=../../elsewhere,b"]) == 1
    assert "may not contain a path separator" in capsys.readouterr().err
    assert not (tmp_path / "elsewhere").exists()
