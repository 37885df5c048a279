import json
import re

import numpy as np
import pytest

from cs336_basics.cli import main
from cs336_basics.run_dir import RunDir
from cs336_common.train.token_file import save_token_file


@pytest.fixture
def config(tmp_path):
    ids = np.random.default_rng().integers(0, 50, size=5000)
    save_token_file(tmp_path / "train.bin", ids[:4000], 50)
    save_token_file(tmp_path / "val.bin", ids[4000:], 50)
    path = tmp_path / "tiny.toml"
    path.write_text(
        f'train_data = "{tmp_path / "train.bin"}"\nval_data = "{tmp_path / "val.bin"}"\n'
        f'out_dir = "{tmp_path / "runs" / "a"}"\nbatch_size = 4\nmax_steps = 6\n'
        "log_every = 2\neval_every = 3\neval_batches = 1\ncheckpoint_every = 3\n"
        "[model]\nvocab_size = 50\ncontext_length = 8\nd_model = 16\nnum_layers = 1\nnum_heads = 2\n"
    )
    return path


def test_train_resume_longer_and_plot(config, tmp_path, capsys):
    assert main(["train", str(config), "--no-progress", "--set", "lr=3e-3"]) == 0
    run = RunDir(tmp_path / "runs" / "a")
    out = capsys.readouterr().out
    assert "6 steps" in out
    # the steady speed: the median of the rows after the first (compilation) one
    speeds = [r["tokens_per_s"] for r in RunDir(tmp_path / "runs" / "a").read_metrics()]
    shown = int(re.search(r"([\d,]+) tokens/s", out).group(1).replace(",", ""))
    assert shown == round(float(np.median(speeds[1:]))) and "MFU" not in out  # CPU: no peak
    assert json.loads(run.config.read_text())["lr"] == 3e-3
    # resuming the finished run says so and changes nothing
    resume = ["train", "--resume", str(run.path), "--no-progress"]
    assert main(resume) == 0
    assert "already finished (6 of 6 steps)" in capsys.readouterr().out
    # extending it is a schedule change: refused without the option, config.json untouched
    assert main([*resume, "--set", "max_steps=9"]) == 1
    err = capsys.readouterr().err
    assert "max_steps 6 -> 9" in err and "--allow-schedule-change" in err
    assert len(err.strip().splitlines()) == 1  # one line, no traceback
    assert json.loads(run.config.read_text())["max_steps"] == 6
    assert main([*resume, "--set", "max_steps=9", "--allow-schedule-change"]) == 0
    assert [r["step"] for r in run.read_metrics()] == [2, 3, 4, 6, 8, 9]
    assert run.latest_checkpoint().name == "step_00000009.pt"
    assert json.loads(run.config.read_text())["max_steps"] == 9
    history = [json.loads(line) for line in run.history.read_text().splitlines()]
    assert [(h["event"], h["step"], h["changes"]) for h in history] == [
        ("start", 0, {}),
        ("resume", 6, {"max_steps": [6, 9]}),
    ]

    assert main(["train", str(config), "--no-progress", "--sweep", "lr=1e-3,1e-2"]) == 0
    sweep = sorted((tmp_path / "runs" / "a").glob("lr=*"))
    assert [p.name for p in sweep] == ["lr=0.001", "lr=0.01"]
    out = tmp_path / "curves.png"
    assert main(["plot", str(run.path), *map(str, sweep), "--out", str(out), "--log-y"]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 10_000


def test_train_errors_are_messages(config, tmp_path, capsys):
    assert main(["train", str(config), "--set", "model.dmodel=8"]) == 1
    assert re.search(r"did you mean model\.d_model", capsys.readouterr().err)
    assert main(["train", "--resume", str(tmp_path / "nowhere")]) == 1
    assert "nowhere/config.json not found" in capsys.readouterr().err
    assert main(["train", str(config), "--no-progress"]) == 0
    assert main(["train", str(config), "--no-progress"]) == 1  # refuses to overwrite
    assert "--resume" in capsys.readouterr().err


def test_help_is_fast_and_lists_commands(capsys):
    import subprocess
    import sys

    code = "import sys, cs336_basics.cli as c; c.main(['--help'])"
    out = subprocess.run([sys.executable, "-c", code + "\nprint('torch' in sys.modules)"],
                         capture_output=True, text=True)  # fmt: skip
    for name in ("train", "plot", "data"):
        assert name in out.stdout
    code = "import sys, cs336_basics.cli as c\ntry: c.main(['train', '--help'])\nexcept SystemExit: pass\nprint('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.stdout.strip().endswith("False")
