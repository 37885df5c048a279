"""`cs336-systems ddp-bench` end to end on 2 gloo ranks with a tiny model."""

import csv

import pytest

from cs336_systems.cli import main
from cs336_systems.commands.ddp_bench import VARIANTS


@pytest.mark.distributed
def test_ddp_bench_runs_every_variant(tmp_path, capsys):
    argv = ["ddp-bench", "--model", "tiny", "--context-length", "8", "--batch-size", "2"]
    argv += ["--dtype", "fp32", "--steps", "1", "--warmup", "0", "--out", str(tmp_path)]
    assert main(argv) == 0
    assert "| torch |" in capsys.readouterr().out
    rows = {r["variant"]: r for r in csv.DictReader((tmp_path / "ddp_bench.csv").open())}
    assert list(rows) == ["compute", *VARIANTS]
    for r in rows.values():
        parts = float(r["fwd_bwd_ms"]) + float(r["sync_ms"]) + float(r["opt_ms"])
        assert float(r["step_ms"]) == pytest.approx(parts) and parts > 0
    assert float(rows["torch"]["vs_torch"]) == 1.0
    # ZeRO-1 and FSDP hold less optimizer state per rank than plain AdamW
    full = float(rows["bucketed"]["opt_state_gib"])
    assert float(rows["sharded"]["opt_state_gib"]) < 0.75 * full
    assert float(rows["fsdp"]["opt_state_gib"]) < 0.75 * full


def test_ddp_bench_rejects_unknown_model(tmp_path):
    with pytest.raises(SystemExit, match=r"--model: model 'huge' is neither a preset \(.*tiny"):
        main(["ddp-bench", "--model", "huge", "--out", str(tmp_path)])
