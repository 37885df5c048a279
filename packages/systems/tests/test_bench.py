"""`cs336-systems bench ...` end to end in --smoke mode (CPU, seconds): tables are written
as Markdown and CSV with the expected rows, and the precision demo shows fp16's drift."""

import csv

import pytest

from cs336_systems.bench.harness import OOM, run_or_oom
from cs336_systems.cli import main


@pytest.mark.parametrize(
    ("bench", "tables"),
    [
        ("model", {"model": 1}),
        ("memory", {"memory": 1}),
        ("attention", {"attention": 2}),
        # ours, default SDPA, cuDNN, flash, efficient; the sweep: ours and default SDPA
        ("flash", {"flash_leaderboard": 5, "flash_errors": 5, "flash_sweep": 2}),
    ],
)
def test_bench_smoke_writes_tables(tmp_path, capsys, bench, tables):
    assert main(["bench", bench, "--smoke", "--no-progress", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    for name, rows in tables.items():
        table = list(csv.DictReader((tmp_path / f"{name}.csv").open()))
        assert len(table) == rows
        assert OOM not in str(table)
        assert (tmp_path / f"{name}.md").read_text().count("\n|") >= rows + 1
        assert "Device: CPU" in out


def test_a_size_given_with_smoke_counts(tmp_path, capsys):
    argv = ["bench", "attention", "--smoke", "--no-progress", "--out", str(tmp_path)]
    assert main([*argv, "--batch-size", "1", "--steps", "3", "--seq-lens", "32,48"]) == 0
    assert "Batch 1, one head, causal, fp32; ms mean ± std of 3." in capsys.readouterr().out
    table = list(csv.DictReader((tmp_path / "attention.csv").open()))
    got = {(row["d"], row["seq"], row["impl"]) for row in table}  # d and impls: --smoke's
    assert got == {("16", seq, impl) for seq in ("32", "48") for impl in ("naive", "flash")}


def test_precision_demo_shows_fp16_accumulation_error(tmp_path, capsys):
    assert main(["bench", "precision", "--out", str(tmp_path)]) == 0
    table = {
        r["case"]: float(r["sum of 1000 × 0.01"])
        for r in csv.DictReader((tmp_path / "precision.csv").open())
    }
    assert abs(table["fp32 accumulator, fp32 addend"] - 10) < 1e-3
    assert abs(table["fp16 accumulator, fp16 addend"] - 10) > 0.04
    assert abs(table["fp32 accumulator, fp16 addend"] - 10) < 0.01


def test_out_of_memory_is_reported_not_raised():
    import torch

    def oom():
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 1 GiB")

    assert run_or_oom(oom) == OOM
    with pytest.raises(ValueError):
        run_or_oom(lambda: (_ for _ in ()).throw(ValueError("not memory")))
