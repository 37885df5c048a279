"""`cs336-systems ddp-bench` end to end on 2 gloo ranks with a tiny model."""

import csv

import pytest

from cs336_systems.bench.ddp import NCCL_ONLY, VARIANTS
from cs336_systems.cli import main


@pytest.mark.distributed
def test_ddp_bench_runs_every_variant(tmp_path, capsys):
    argv = ["ddp-bench", "--model", "tiny", "--context-length", "8", "--batch-size", "2"]
    argv += ["--dtype", "fp32", "--steps", "2", "--warmup", "0", "--rounds", "2"]
    assert main([*argv, "--out", str(tmp_path)]) == 0
    assert "| torch |" in capsys.readouterr().out
    names = ["compute", *(v for v in VARIANTS if v not in NCCL_ONLY)]
    rows = {r["variant"]: r for r in csv.DictReader((tmp_path / "ddp_bench.csv").open())}
    assert list(rows) == names
    # interleaved: every variant once per round, the second round rotated by one
    rounds = list(csv.DictReader((tmp_path / "ddp_bench_rounds.csv").open()))
    assert [r["variant"] for r in rounds] == names + names[1:] + names[:1]
    for r in rows.values():
        parts = float(r["fwd_bwd_ms"]) + float(r["sync_ms"]) + float(r["opt_ms"])
        assert float(r["step_ms"]) == pytest.approx(parts, rel=0.5) and parts > 0
    assert float(rows["torch"]["vs_ref"]) == 1.0 and rows["fsdp"]["ref"] == ""
    # every communicating variant took the same first step: same loss at the second
    want = float(rows["torch"]["loss"])
    for name in names[1:]:
        assert float(rows[name]["loss"]) == pytest.approx(want, rel=1e-5), name
    # ZeRO-1 and FSDP hold less optimizer state per rank than plain AdamW
    full = float(rows["bucketed"]["opt_state_gib"])
    assert float(rows["sharded"]["opt_state_gib"]) < 0.75 * full
    assert float(rows["fsdp"]["opt_state_gib"]) < 0.75 * full


def test_ddp_bench_rejects_unknown_model(tmp_path, capsys):
    assert main(["ddp-bench", "--model", "huge", "--out", str(tmp_path)]) == 1
    assert capsys.readouterr().err.startswith(
        "cs336-systems: error: model 'huge' is neither a preset"
    )


def test_ddp_bench_fsdp2_needs_nccl(tmp_path, capsys):
    argv = ["ddp-bench", "--variant", "torch-fsdp", "--backend", "gloo", "--out", str(tmp_path)]
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    assert "--variant torch-fsdp needs --backend nccl" in capsys.readouterr().err
