"""`cs336-systems comm-bench` end to end on 2 gloo ranks with tiny messages."""

import csv

import pytest

from cs336_systems.cli import main


@pytest.mark.distributed
def test_comm_bench_writes_table_csv_and_plot(tmp_path, capsys):
    argv = ["comm-bench", "--sizes-mib", "0.25", "1", "--iters", "1", "--warmup", "0"]
    assert main([*argv, "--out", str(tmp_path)]) == 0
    assert "| gloo | 2 | 0.25 |" in capsys.readouterr().out
    rows = list(csv.DictReader((tmp_path / "comm_bench.csv").open()))
    assert [float(r["size_mib"]) for r in rows] == [0.25, 1.0]
    for r in rows:
        assert float(r["latency_ms"]) > 0
        # 2 ranks: a ring all-reduce's bus bandwidth equals its algorithm bandwidth
        assert float(r["busbw_gbps"]) == pytest.approx(float(r["algbw_gbps"]))
    assert (tmp_path / "comm_bench.png").read_bytes()[:4] == b"\x89PNG"


def test_comm_bench_rejects_nccl_without_gpus(tmp_path, capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has GPUs")
    assert main(["comm-bench", "--backend", "nccl", "--out", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert (
        err == "cs336-systems: error: --backend nccl needs one GPU per rank; this machine has 0\n"
    )
