"""`cs336-systems`: what --help prints, and one-line errors with exit codes (1; 2 for
usage) that write nothing, for every expected mistake."""

import re

import pytest
import torch

from cs336_systems.cli import main


def test_about_names_the_package(capsys):
    assert main(["about"]) == 0
    assert capsys.readouterr().out.startswith("cs336-systems ")


def _help(argv, capsys) -> str:
    with pytest.raises(SystemExit) as e:
        main([*argv, "--help"])
    assert e.value.code == 0
    return capsys.readouterr().out


def test_help_says_what_each_command_does(capsys):
    out = _help([], capsys)
    for command, words in [("bench", "benchmarks"), ("comm-bench", "all-reduce latency"),
                           ("ddp-bench", "DDP/ZeRO/FSDP")]:  # fmt: skip
        assert re.search(rf"^\s+{command}\s+.*{re.escape(words)}", out, re.M), out
    assert "--debug" in out
    out = _help(["bench"], capsys)
    for bench in ("model", "memory", "attention", "flash", "precision"):
        assert re.search(rf"^\s+{bench}\s+\S", out, re.M), out
    assert "--smoke" in _help(["bench", "model"], capsys)
    out = _help(["ddp-bench"], capsys)
    assert "naive" in out and "fsdp" in out and "--bucket-mb" in out
    assert "--sizes-mib" in _help(["comm-bench"], capsys)


def fails(argv, capsys, tmp_path, match: str, code: int = 1) -> None:
    before = sorted(tmp_path.rglob("*"))
    try:
        got = main([str(a) for a in argv])
    except SystemExit as e:
        got = e.code
    err = capsys.readouterr().err
    assert got == code, err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert code == 2 or len(lines) == 1, err
    assert re.search(match, lines[-1]) and lines[-1].startswith("cs336-systems"), lines[-1]
    assert sorted(tmp_path.rglob("*")) == before


def test_bench_errors(tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    out = ["--out", tmp_path / "out"]
    smoke = ["bench", "model", "--smoke"]
    fails([*smoke, "--out", tmp_path / "file"], capsys, tmp_path, r"--out .*file is a file")
    fails(
        ["bench", "model", "--sizes", "huge", *out],
        capsys,
        tmp_path,
        r"model 'huge' is neither a preset \(.*tiny",
    )
    fails(["bench", "model", "--steps", "0", *out], capsys, tmp_path, r"--steps: expected an integer >= 1", 2)  # fmt: skip
    fails(["bench", "model", "--context-lengths", "1,x", *out], capsys, tmp_path,
          r"--context-lengths: expected integers >= 1 like 128,256, got '1,x'", 2)  # fmt: skip
    fails(["bench", "attention", "--impls", "fast", *out], capsys, tmp_path,
          r"unknown attention impls \['fast'\]")  # fmt: skip
    fails([*smoke, "--device", "tpu", *out], capsys, tmp_path, r"unknown device 'tpu'")
    if not torch.cuda.is_available():
        fails([*smoke, "--device", "cuda", *out], capsys, tmp_path, r"no CUDA GPU")


def test_distributed_command_errors(tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    fails(["comm-bench", "--iters", "0"], capsys, tmp_path, r"--iters: expected an integer >= 1", 2)
    fails(["comm-bench", "--sizes-mib", "-1"], capsys, tmp_path, r"--sizes-mib: expected a finite number > 0", 2)  # fmt: skip
    fails(["comm-bench", "--out", tmp_path / "file"], capsys, tmp_path, r"--out .*file is a file")
    fails(["ddp-bench", "--out", tmp_path / "file"], capsys, tmp_path, r"--out .*file is a file")
    fails(["ddp-bench", "--steps", "0"], capsys, tmp_path, r"--steps: expected an integer >= 1", 2)
    fails(["ddp-bench", "--model", "huge", "--out", tmp_path / "o"], capsys, tmp_path,
          r"model 'huge' is neither a preset \(.*tiny")  # fmt: skip


def test_debug_shows_the_traceback(tmp_path):
    with pytest.raises(FileNotFoundError, match="model 'huge' is neither a preset"):
        main(["--debug", "bench", "model", "--sizes", "huge", "--out", str(tmp_path / "o")])
