"""Sweep planning, the sweep against a real (simulated-trainer) service, resume, predict."""

import json
import math

import pytest

from cs336_scaling.cli import main
from cs336_scaling.planner import closest_shape, plan_profile, shapes
from cs336_scaling.settings import non_embedding_params, tokens_for


def test_shapes_stay_in_range_with_dividing_heads():
    cands = shapes((64, 1024), (2, 24), (2, 16))
    assert {d for d, _, _ in cands} == set(range(64, 1025, 64))
    for d, n, h in cands:
        assert 2 <= n <= 24 and 2 <= h <= 16 and d % h == 0
    assert (768, 12, 12) in cands  # GPT-2 small's shape


def test_closest_shape_and_profile():
    cands = shapes((64, 1024), (2, 24), (2, 16))
    d, n, _ = closest_shape(85e6, cands)  # GPT-2 small's non-embedding size
    assert abs(math.log(12 * n * d * d / 85e6)) < 0.1
    profile = plan_profile(1e18, cands, 6, 128, 1e-3, 512)
    sizes = [non_embedding_params(c) for c in profile]
    assert len(profile) >= 5 and sizes == sorted(sizes) and sizes[-1] / sizes[0] > 10
    assert all(c["train_flops"] == 1e18 and tokens_for(c) >= 10 * 128 * 512 for c in profile)
    # the Chinchilla guess N = sqrt(C/120) lies inside the profile
    assert sizes[0] < math.sqrt(1e18 / 120) < sizes[-1]


@pytest.fixture(scope="module")
def sim_service(tmp_path_factory, svc):
    state = tmp_path_factory.mktemp("sweep") / "state"
    key = svc.create_key(state, "sweeper", budget=1e20)
    server = svc.Server(
        state, {"trainer": "cs336_scaling.simulate:simulated_loss", "max_parallel": 8}
    )
    yield server, key
    server.stop()


def test_sweep_resumes_and_predict_recovers_the_law(sim_service, tmp_path, capsys):
    server, key = sim_service
    out = tmp_path / "sweep.json"
    args = [
        "sweep",
        "--url",
        server.url,
        "--api-key",
        key,
        "--budgets",
        "1e16",
        "1e17",
        "1e18",
        "--total-budget",
        "1e19",
        "--points",
        "5",
        "--parallel",
        "8",
        "--out",
        str(out),
    ]
    assert main([*args, "--dry-run"]) == 0
    assert not out.exists() and "15 to ask for" in capsys.readouterr().out
    assert main(args) == 0
    records = json.loads(out.read_text())
    assert len(records) == 15 and {r["compute_budget"] for r in records} == {1e16, 1e17, 1e18}
    capsys.readouterr()
    assert main(args) == 0  # resumed: nothing left to ask
    assert "0 to ask for" in capsys.readouterr().out
    assert (
        main(
            [
                "predict",
                str(out),
                "--target-flops",
                "1e19",
                "--bootstrap",
                "8",
                "--json",
                "--out-dir",
                str(tmp_path / "plots"),
            ]
        )
        == 0
    )
    pred = json.loads(capsys.readouterr().out)
    # the simulated law has N_opt ∝ C^(β/(α+β)) = C^0.45
    assert pred["a"] == pytest.approx(0.28 / 0.62, abs=0.12)
    cfg = pred["config"]
    assert cfg["d_model"] % cfg["num_heads"] == 0 and cfg["batch_size"] == 128
    assert abs(math.log(cfg["parameters"] / pred["N_opt"])) < 0.3
    lo, hi = pred["loss_interval"]
    assert lo <= pred["loss"] <= hi
    assert (tmp_path / "plots" / "loss.png").stat().st_size > 1000


def test_sweep_refuses_budgets_off_the_grid(sim_service, tmp_path):
    server, key = sim_service
    with pytest.raises(SystemExit, match="not on the service's FLOPs grid"):
        main(
            [
                "sweep",
                "--url",
                server.url,
                "--api-key",
                key,
                "--budgets",
                "2e16",
                "--total-budget",
                "1e19",
                "--out",
                str(tmp_path / "s.json"),
            ]
        )
