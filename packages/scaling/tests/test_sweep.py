"""Sweep planning, the sweep against a real (simulated-trainer) service, resume, predict."""

import json
import math
import os
import signal
import subprocess
import sys
import time

import pytest

from cs336_scaling.cli import main
from cs336_scaling.planner import closest_shape, edge_extension, plan_profile, shapes
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


def _sweep_args(url, out, budgets=("1e16",)):
    return ["sweep", "--url", url, "--api-key", "k", "--budgets", *budgets,
            "--total-budget", "1e19", "--out", str(out), "--dry-run"]  # fmt: skip


def test_sweep_refuses_budgets_off_the_grid(sim_service, tmp_path, capsys):
    server, _ = sim_service
    assert main(_sweep_args(server.url, tmp_path / "s.json", ["2e16"])) == 1
    err = capsys.readouterr().err
    assert err.startswith("cs336-scaling: error: --budgets: 2e+16 is not on the service's FLOPs")
    assert err.count("\n") == 1


def test_one_sweep_at_a_time_writes_a_results_file(sim_service, tmp_path, capsys):
    import fcntl

    server, _ = sim_service
    out = tmp_path / "s.json"
    with open(tmp_path / "s.json.lock", "a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        assert main(_sweep_args(server.url, out)) == 1
    assert f"--out {out}: another sweep is writing it" in capsys.readouterr().err
    assert main(_sweep_args(server.url, out)) == 0  # released: the dry run plans


@pytest.mark.parametrize(
    ("status", "body", "message"),
    [
        (200, b"<html>oops</html>", "/settings: not a settings JSON object"),
        (200, b'{"d_model": [64, 1024]}', "/settings: the settings lack the field 'num_layers'"),
        (
            200,
            b'{"d_model": [0, 8], "num_layers": [2, 4], "num_heads": [2, 4], '
            b'"batch_size": [128], "train_flops": [1e16], "context_length": 64}',
            "settings.d_model must be a range [lo, hi] with 0 < lo <= hi",
        ),
        (500, b"", "/settings: HTTP 500"),
    ],
)
def test_a_malformed_settings_page_is_one_clear_error(tmp_path, capsys, status, body, message):
    from http.server import BaseHTTPRequestHandler, HTTPServer
    from threading import Thread

    class Settings(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Settings)
    Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        assert main(_sweep_args(url, tmp_path / "s.json")) == 1
    finally:
        server.shutdown()
    err = capsys.readouterr().err
    assert err.startswith("cs336-scaling: error: ") and message in err and err.count("\n") == 1


def _runs(sizes_losses, budget=1e16):
    """Answered runs of one profile: (d_model, num_layers) -> loss."""
    return [
        dict(d_model=d, num_layers=n, num_heads=d // 64, batch_size=128, learning_rate=1e-3,
             train_flops=budget, final_loss=loss)
        for (d, n), loss in sizes_losses.items()
    ]  # fmt: skip


def test_edge_extension_goes_one_step_beyond_the_edge_holding_the_minimum():
    cands = shapes((64, 1024), (2, 24), (2, 16))
    shape = {(256, 4): 0, (384, 6): 1, (512, 8): 2}
    sizes = [12 * n * d * d for d, n in shape]

    def extend(losses):
        runs = _runs(dict(zip(shape, losses, strict=True)))
        return edge_extension(runs, cands, 3.0, 128, 1e-3, 512)

    assert extend([5.0, 4.9, 5.1]) == []  # bracketed
    (down,) = extend([4.8, 4.9, 5.1])
    assert abs(math.log(non_embedding_params(down) / (sizes[0] / 3))) < 0.3
    (up,) = extend([5.2, 5.0, 4.9])
    assert abs(math.log(non_embedding_params(up) / (sizes[-1] * 3))) < 0.3
    assert up["train_flops"] == 1e16 and up["d_model"] % up["num_heads"] == 0
    # at the edge of the service's ranges there is nothing further out
    smallest = _runs({(64, 2): 4.0, (64, 4): 4.5, (128, 2): 4.6})
    assert edge_extension(smallest, cands, 3.0, 128, 1e-3, 512) == []
    # two runs are not a profile yet
    assert edge_extension(_runs({(256, 4): 4.0, (512, 8): 5.0}), cands, 3.0, 128, 1e-3, 512) == []


def test_sweep_extends_a_profile_until_its_minimum_is_bracketed(svc, tmp_path, capsys):
    state = tmp_path / "state"
    key = svc.create_key(state, "sweeper", budget=1e20)
    # every model learns like one 16x smaller: the optimum lies above the planned profile
    server = svc.Server(
        state,
        {
            "trainer": "cs336_scaling.simulate:simulated_loss",
            "trainer_options": {"n_scale": 1 / 16},
            "max_parallel": 4,
        },
    )
    try:
        out = tmp_path / "sweep.json"
        args = ["sweep", "--url", server.url, "--api-key", key, "--budgets", "1e16",
                "--total-budget", "1e19", "--points", "3", "--out", str(out)]  # fmt: skip
        assert main([*args, "--extend", "0"]) == 0
        assert len(json.loads(out.read_text())) == 3
        capsys.readouterr()
        assert main(args) == 0
        printed = capsys.readouterr().out
        runs = sorted(json.loads(out.read_text()), key=lambda r: r["parameters"])
        assert 4 <= len(runs) <= 5 and printed.count("extend ") == len(runs) - 3
        losses = [r["final_loss"] for r in runs]
        assert 0 < losses.index(min(losses)) < len(runs) - 1  # bracketed now
        assert main(args) == 0  # resumed: the extensions are not asked again
        assert "extend " not in capsys.readouterr().out
    finally:
        server.stop()


@pytest.fixture(scope="module")
def slow_service(tmp_path_factory, svc):
    state = tmp_path_factory.mktemp("slow") / "state"
    key = svc.create_key(state, "slow", budget=1e20)
    options = {"seconds": 60}  # every query stays in flight for the whole test
    server = svc.Server(state, {**svc.TINY, "budget": 1e20, "trainer_options": options})
    yield server, key
    server.stop()


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_stops_the_sweep_at_once(slow_service, svc, tmp_path, sig, code):
    from cs336_scaling.client import ScalingClient

    server, key = slow_service
    out = tmp_path / "sweep.json"
    argv = ["--url", server.url, "--api-key", key, "--budgets", "1e10", "--total-budget", "1e12"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "cs336_scaling.cli", "sweep", *argv, "--out", str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    lines = []
    while not any("runs planned" in line for line in lines):  # then it starts asking
        lines.append(proc.stdout.readline())
        assert lines[-1] or proc.poll() is None, proc.stderr.read()  # EOF: it died early
    client = ScalingClient(server.url, key)
    svc.wait_for(lambda: client.runs())  # a query is in flight
    time.sleep(0.5)
    proc.send_signal(sig)
    start = time.monotonic()
    stdout, stderr = proc.communicate(timeout=30)
    assert time.monotonic() - start < 10  # not after the queries in flight (60 s)
    assert proc.returncode == code, stderr
    assert f"interrupted: 0 answers saved in {out}; re-run to continue" in stdout
    assert "Traceback" not in stderr and not out.exists()
