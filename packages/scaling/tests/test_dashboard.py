"""The dashboard, loaded in headless Chromium (Debian's `chromium`; skipped without it).

SCALING_DASHBOARD_PNG=path keeps the screenshot (the README's comes from here)."""

import os
import shutil
import subprocess

import pytest

from cs336_scaling.client import ScalingClient

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="needs chromium (apt-get install chromium)")
def test_dashboard_renders_runs_budget_curves_and_fit(tmp_path, svc):
    state = tmp_path / "state"
    key = svc.create_key(state, "alice", budget=1e20)
    server = svc.Server(
        state, {"trainer": "cs336_scaling.simulate:simulated_loss", "max_parallel": 4}
    )
    try:
        client = ScalingClient(server.url, key)
        for flops in (1e16, 1e17, 1e18):
            for d, n in ((128, 4), (256, 4), (384, 6), (512, 8), (768, 12)):
                client.submit(
                    d_model=d,
                    num_layers=n,
                    num_heads=d // 64,
                    batch_size=128,
                    learning_rate=1e-3,
                    train_flops=flops,
                )
        svc.wait_for(lambda: len(client.runs(status="finished")) == 15)
        chrome = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars"]
        dom = subprocess.run(
            [*chrome, "--dump-dom", server.url + "/"], capture_output=True, text=True, timeout=120
        ).stdout
        shot = tmp_path / "dashboard.png"
        subprocess.run(
            [*chrome, f"--screenshot={shot}", "--window-size=1300,900", server.url + "/"],
            capture_output=True,
            timeout=120,
            check=True,
        )
    finally:
        server.stop()
    assert "Runs (15)" in dom and "alice" in dom and dom.count('class="finished"') == 15
    assert "N<sub>opt</sub>" in dom and "over 3 budgets" in dom
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000
    if os.environ.get("SCALING_DASHBOARD_PNG"):
        shutil.copy(shot, os.environ["SCALING_DASHBOARD_PNG"])
