"""The real service on a loopback port (simulated trainer: mechanics, not learning)."""

import os
import signal
import threading

import pytest

from cs336_scaling.client import ScalingClient, ScalingServiceError

CONFIG = dict(
    d_model=32, num_layers=2, num_heads=2, batch_size=128, learning_rate=1e-3, train_flops=1e9
)


@pytest.fixture(scope="module")
def service(tmp_path_factory, svc):
    state = tmp_path_factory.mktemp("svc") / "state"
    key = svc.create_key(state, "alice")
    server = svc.Server(state, {**svc.TINY, "trainer_options": {"seconds": 1.0}})
    yield server, ScalingClient(server.url, key), key
    if server.proc.poll() is None:
        server.stop()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"d_model": 9999}, "d_model must be in range [16, 64], got 9999"),
        ({"num_layers": 1}, "num_layers must be in range [2, 4], got 1"),
        ({"num_heads": 5}, "num_heads must be in range [2, 4], got 5"),
        ({"learning_rate": 0.1}, "learning_rate must be in range [0.0001, 0.001], got 0.1"),
        ({"batch_size": 100}, "batch_size must be one of [128, 256], got 100"),
        (
            {"train_flops": 2e9},
            "train_flops must be one of [1e+09, 3e+09, 1e+10], got 2000000000.0",
        ),
        ({"d_model": "big"}, "d_model must be a number, got 'big'"),
        ({"d_model": 30, "num_heads": 4}, "d_model (30) must be divisible by num_heads (4)"),
    ],
)
def test_validation_names_field_range_and_value(service, change, message):
    _, client, _ = service
    with pytest.raises(ScalingServiceError) as e:
        client.loss(**{**CONFIG, **change})
    assert e.value.message == message and e.value.status == 422


def test_unknown_key(service):
    server, _, _ = service
    with pytest.raises(ScalingServiceError, match=r"^Invalid API key provided: nope$"):
        ScalingClient(server.url, "nope").total_flops_used()


def test_loss_then_cache_hit_is_free(service):
    _, client, _ = service
    before = client.total_flops_used()
    first = client.loss(**CONFIG)
    assert first["total_flops_used"] == before + 1e9
    again = client.loss(**CONFIG)
    assert again == first  # same loss, nothing more charged
    assert client.total_flops_used() == before + 1e9
    assert [
        r["loss"] for r in client.previous_runs() if r["d_model"] == 32 and r["train_flops"] == 1e9
    ] == [first["loss"]]


def test_two_concurrent_identical_queries_train_once(service):
    server, client, _ = service
    config = {**CONFIG, "d_model": 48}
    results = []
    threads = [
        threading.Thread(target=lambda: results.append(client.loss(**config))) for _ in range(2)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results[0]["loss"] == results[1]["loss"]
    runs = [r for r in client.runs() if r["d_model"] == 48]
    assert len(runs) == 1
    jobs = list((server.state_dir / "jobs").glob("*_submitted.pkl"))
    assert len(jobs) == len(client.runs())  # one job per run, not per query


def test_async_submit_poll_list_budget(service, svc):
    _, client, _ = service
    run = client.submit(**{**CONFIG, "num_layers": 3})
    assert run["status"] in ("queued", "running") and isinstance(run["id"], int)
    done = svc.wait_for(lambda: (r := client.run(run["id"]))["status"] == "finished" and r)
    assert done["loss"] > 0 and done["error"] is None
    assert run["id"] in [r["id"] for r in client.runs(status="finished")]
    budget = client.budget()
    assert budget["used"] == client.total_flops_used()
    assert budget["budget"] == 2e10 and budget["remaining"] == budget["budget"] - budget["used"]
    with pytest.raises(ScalingServiceError, match="no run 99999"):
        client.run(99999)


def test_budget_refusal_charges_nothing(service):
    _, client, _ = service
    before = client.total_flops_used()
    with pytest.raises(ScalingServiceError, match="Budget exceeded") as e:
        client.loss(**{**CONFIG, "train_flops": 1e10, "d_model": 64})
        client.loss(**{**CONFIG, "train_flops": 1e10, "d_model": 16})
    assert e.value.status == 403
    assert client.total_flops_used() <= 2e10
    spent = client.total_flops_used()
    with pytest.raises(ScalingServiceError, match="Budget exceeded"):
        client.loss(**{**CONFIG, "train_flops": 1e10, "num_layers": 4})
    assert client.total_flops_used() == spent >= before
    assert client.loss(**CONFIG)["total_flops_used"] == spent  # cached answers stay free


def test_restart_keeps_everything(service, svc):
    server, client, key = service
    runs, used = client.previous_runs(), client.total_flops_used()
    assert server.stop() == 0
    again = svc.Server(server.state_dir, {**svc.TINY, "trainer_options": {"seconds": 1.0}})
    try:
        client2 = ScalingClient(again.url, key)
        assert client2.previous_runs() == runs and client2.total_flops_used() == used
        assert client2.loss(**CONFIG)["loss"] == runs[0]["loss"]
        assert len(list((server.state_dir / "jobs").glob("*_submitted.pkl"))) == len(client2.runs())
    finally:
        again.stop()


def test_killed_run_and_runs_that_died_with_the_server_are_failed(tmp_path, svc):
    state = tmp_path / "state"
    key = svc.create_key(state, "bob")
    slow = {**svc.TINY, "trainer_options": {"seconds": 120}, "max_parallel": 2}
    server = svc.Server(state, slow)
    client = ScalingClient(server.url, key)
    try:
        killed = client.submit(**CONFIG)
        orphan = client.submit(**{**CONFIG, "d_model": 16})
        pid = svc.wait_for(lambda: (r := _job(state, killed["id"])) and r)
        os.kill(int(pid), signal.SIGKILL)
        failed = svc.wait_for(lambda: (r := client.run(killed["id"]))["status"] == "failed" and r)
        assert failed["error"] and client.total_flops_used() == 1e9  # failed runs cost nothing
        svc.wait_for(lambda: client.run(orphan["id"])["status"] == "running")
        orphan_pid = svc.wait_for(lambda: _job(state, orphan["id"]))
        server.stop(signal.SIGKILL)  # the server dies without cleaning up
        os.kill(int(orphan_pid), signal.SIGKILL)
        server = svc.Server(state, {**slow, "trainer_options": {"seconds": 0}})
        assert "1 that died with the last server marked failed" in server.banner
        client = ScalingClient(server.url, key)
        run = client.run(orphan["id"])
        assert run["status"] == "failed" and "server stopped" in run["error"]
        assert client.total_flops_used() == 0
        assert client.loss(**CONFIG)["total_flops_used"] == 1e9  # a failed run may be retried
    finally:
        server.stop(signal.SIGKILL)


def test_sigterm_with_a_run_in_flight_stops_cleanly(tmp_path, svc):
    state = tmp_path / "state"
    key = svc.create_key(state, "carol")
    server = svc.Server(state, {**svc.TINY, "trainer_options": {"seconds": 120}})
    client = ScalingClient(server.url, key)
    run = client.submit(**CONFIG)
    svc.wait_for(lambda: _job(state, run["id"]))
    server.proc.send_signal(signal.SIGTERM)
    _, err = server.proc.communicate(timeout=60)
    # the cancelled job's controller reports its interrupt in the job logs, not here
    assert server.proc.returncode == 0 and "Traceback" not in err, err
    assert next(state.rglob("controllers.err"), None) is not None


def _job(state, run_id):
    import sqlite3

    db = sqlite3.connect(state / "service.db")
    try:
        return db.execute("SELECT job_id FROM runs WHERE id = ?", (run_id,)).fetchone()[0]
    finally:
        db.close()
