"""The training-step benchmark scripts run on the CPU (their --tiny checks) and refuse bad
arguments with one line before any work."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


def _run(script: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(BENCH / script), *args], capture_output=True, text=True, timeout=300
    )


def test_bench_train_step_tiny_eager_step_prints_its_row():
    proc = _run(
        "bench_train_step.py", "--device", "cpu", "--tiny", "--variants", "a", "--steps", "2"
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    row = next(line for line in proc.stdout.splitlines() if line.startswith("| (a)"))
    tokens_per_s = float(row.split("|")[2].replace(",", ""))
    assert tokens_per_s > 0


@pytest.mark.parametrize("script", ["bench_train_step.py", "profile_train_step.py"])
def test_unknown_variant_is_one_line_and_exit_2(script):
    proc = _run(script, "--device", "cpu", "--tiny", "--variants", "az")
    assert proc.returncode == 2
    assert (
        proc.stderr.strip()
        .splitlines()[-1]
        .endswith("--variants: unknown 'z'; choose from abcdefghij")
    )
    assert "Traceback" not in proc.stderr


def test_trainer_vs_step_refuses_an_unknown_pair_before_any_run():
    proc = _run("trainer_vs_step.py", "--device", "cpu", "--tiny", "--pairs", "shipped,fast")
    assert proc.returncode == 1
    assert proc.stderr.strip() == "--pairs: unknown fast; choose from train, shipped"


def test_profile_idle_time_is_the_span_minus_the_kernels(capsys):
    sys.path.insert(0, str(BENCH))
    try:
        from profile_train_step import _print_idle
    finally:
        sys.path.remove(str(BENCH))
    # kernels (start, end) in µs of one step: overlapping a/b, then gaps of 8 and 1 µs
    _print_idle([(20, 30, "c"), (0, 10, "a"), (5, 12, "b"), (31, 40, "d")], steps=1, top=1)
    out = capsys.readouterr().out.splitlines()
    assert out[0].strip() == "GPU idle between kernels: 0.009 ms a step; longest gaps:"
    assert out[1].split() == ["8.0", "us", "after", "b", "before", "c"]
