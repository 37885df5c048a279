"""`cs336-systems comm-bench` end to end on 2 gloo ranks with tiny messages."""

import csv
import re

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


def _spawned_ranks(parent: int) -> list[int]:
    """Pids of the ranks that ``parent`` started with the spawn method (Linux /proc)."""
    from pathlib import Path

    ranks = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            cmdline = (stat.parent / "cmdline").read_bytes()
        except (OSError, IndexError, ValueError):  # ended meanwhile
            continue
        if ppid == parent and b"spawn_main" in cmdline:
            ranks.append(int(stat.parent.name))
    return ranks


@pytest.mark.distributed
@pytest.mark.parametrize("ctrl_c", [False, True], ids=["sigterm", "ctrl-c"])
def test_a_signal_stops_the_ranks_and_leaves_no_temporary_files(tmp_path, ctrl_c):
    """SIGTERM to comm-bench, or Ctrl-C (SIGINT to the whole process group, as a terminal
    sends it), while its ranks measure: every rank is killed, no temporary file is left
    (the folder for rank 0's rows, the ranks' error files) and it exits 143 or 130 with
    one line and no warning."""
    import os
    import signal
    import subprocess
    import sys
    import time

    tmp, log = tmp_path / "tmp", tmp_path / "stderr.txt"
    tmp.mkdir()
    argv = ["comm-bench", "--sizes-mib", "1", "--iters", "1000000", "--out", tmp_path / "o"]
    with log.open("w") as err:  # a file, not a pipe: orphaned ranks would hold a pipe open
        proc = subprocess.Popen(
            [sys.executable, "-m", "cs336_systems.cli", *map(str, argv)],
            stderr=err,
            env={**os.environ, "TMPDIR": str(tmp)},
            start_new_session=True,  # its own process group, for Ctrl-C
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),  # even if ignored here
        )
    ranks, left = [], []
    try:
        deadline = time.monotonic() + 120
        while "all-reduce" not in log.read_text() and time.monotonic() < deadline:
            assert proc.poll() is None, log.read_text()
            time.sleep(0.1)  # until rank 0 draws its bar: the ranks are measuring
        ranks = _spawned_ranks(proc.pid)
        if ctrl_c:
            os.killpg(proc.pid, signal.SIGINT)
        else:
            proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
        left = [pid for pid in ranks if _alive(pid)]
    finally:  # a failed run must not leave processes behind
        for pid in [proc.pid, *ranks] if proc.poll() is None else left:
            os.kill(pid, signal.SIGKILL)
    err = log.read_text()
    assert proc.returncode == 128 + (signal.SIGINT if ctrl_c else signal.SIGTERM), err
    # besides rank 0's bar (drawn again if Ctrl-C reached the rank first), one line: no
    # traceback, no leaked-semaphore warning
    assert re.sub(r"all-reduce gloo x2:[^\r\n]*\]", "", err).strip() == "interrupted", err
    assert len(ranks) == 2 and left == []  # no orphaned rank
    assert list(tmp.iterdir()) == [] and not (tmp_path / "o").exists()


def _alive(pid: int) -> bool:
    import os

    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
