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
    out = " ".join(_help(["bench", "model"], capsys).split())
    assert "--batch-size BATCH_SIZE default 4; with --smoke 2" in out


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


@pytest.mark.parametrize(
    ("argv", "match"),
    [
        (["model", "--sizes", ","], r"--sizes: expected comma-separated names, got ','"),
        (["flash", "--dtypes", "bf16,fp64"], r"--dtypes: expected some of bf16,fp32, got fp64"),
    ],
)
def test_bad_lists_are_usage_errors(tmp_path, capsys, argv, match):
    fails(["bench", *argv, "--smoke", "--out", tmp_path / "o"], capsys, tmp_path, match, 2)


@pytest.mark.parametrize(
    ("argv", "match"),
    [
        # small sizes: were the check gone, the work would be seconds, not hours
        (
            ["memory", "--sizes", "tiny", "--context-lengths", "16"],
            r"bench memory measures CUDA; the device is cpu \(--smoke runs",
        ),
        (
            ["flash", "--part", "sweep", "--seq-lens", "64", "--head-dims", "16"],
            r"bench flash measures CUDA; the device is cpu",
        ),
        (["model", "--smoke", "--nvtx"], r"--nvtx: NVTX ranges mark CUDA work; the device is cpu"),
    ],
)
def test_cuda_only_work_on_the_cpu_is_refused(tmp_path, capsys, argv, match):
    fails(["bench", *argv, "--device", "cpu", "--out", tmp_path / "o"], capsys, tmp_path, match)


@pytest.mark.parametrize("argv", [["model", "--compile"], ["attention", "--impls", "compiled"]])
def test_compile_on_the_cpu_without_a_cxx_compiler(tmp_path, capsys, argv):
    import torch._inductor.config

    with torch._inductor.config.patch({"cpp.cxx": (str(tmp_path / "no-g++"),)}):
        fails(["bench", *argv, "--smoke", "--out", tmp_path / "o"], capsys, tmp_path,
              r"torch.compile on the cpu needs a working C\+\+ compiler")  # fmt: skip


def test_distributed_command_errors(tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    fails(["comm-bench", "--iters", "0"], capsys, tmp_path, r"--iters: expected an integer >= 1", 2)
    fails(["comm-bench", "--sizes-mib", "-1"], capsys, tmp_path, r"--sizes-mib: expected a finite number > 0", 2)  # fmt: skip
    fails(["comm-bench", "--out", tmp_path / "file"], capsys, tmp_path, r"--out .*file is a file")
    fails(["ddp-bench", "--out", tmp_path / "file"], capsys, tmp_path, r"--out .*file is a file")
    fails(["ddp-bench", "--steps", "0"], capsys, tmp_path, r"--steps: expected an integer >= 1", 2)
    fails(["ddp-bench", "--model", "huge", "--out", tmp_path / "o"], capsys, tmp_path,
          r"model 'huge' is neither a preset \(.*tiny")  # fmt: skip


_TOO_MANY_GPUS = str(torch.cuda.device_count() + 1)
_TORCHRUN = {"RANK": "0", "WORLD_SIZE": "1"}  # what torchrun gives each rank


@pytest.mark.parametrize(
    ("argv", "env", "match", "code"),
    [
        (["ddp-bench", "--backend", "nccl", "--world-size", _TOO_MANY_GPUS], {},
         r"--backend nccl needs one GPU per rank; this machine has", 1),
        (["comm-bench", "--sizes-mib", "1", "1e-7"], {},
         r"--sizes-mib 1e-07: less than one float32 \(4 bytes\)", 1),
        (["comm-bench", "--backend", "gloo", "nccl"], _TORCHRUN,
         r"--backend gloo nccl: torchrun made one group, give one backend", 2),
        (["comm-bench", "--timeout", "0.2"], {},  # less than starting a rank takes
         r"measure_all_reduce on 2 gloo ranks did not finish within --timeout 0.2 s", 1),
    ],
)  # fmt: skip
def test_distributed_mistakes_are_one_line(tmp_path, capsys, monkeypatch, argv, env, match, code):
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    fails([*argv, "--out", tmp_path / "o"], capsys, tmp_path, match, code)


def test_debug_shows_the_traceback(tmp_path):
    with pytest.raises(FileNotFoundError, match="model 'huge' is neither a preset"):
        main(["--debug", "bench", "model", "--sizes", "huge", "--out", str(tmp_path / "o")])
