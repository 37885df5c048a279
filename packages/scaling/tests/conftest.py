"""Fixtures that start the real `cs336-scaling serve` on a loopback port, as a user would."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

TINY = {
    "d_model": [16, 64],
    "num_layers": [2, 4],
    "num_heads": [2, 4],
    "train_flops": [1e9, 3e9, 1e10],
    "budget": 2e10,
    "context_length": 32,
    "trainer": "cs336_scaling.simulate:simulated_loss",
}


class Server:
    def __init__(self, state_dir: Path, settings: dict, extra=()):
        self.state_dir = state_dir
        path = state_dir.with_suffix(".settings.json")
        path.write_text(json.dumps(settings))
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "cs336_scaling.cli",
                "serve",
                "--port",
                "0",
                "--state-dir",
                str(state_dir),
                "--settings",
                str(path),
                *extra,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        line = self.proc.stdout.readline()
        match = re.search(r"http://[\d.]+:\d+", line)
        if match is None:
            self.proc.kill()
            raise RuntimeError(f"server did not start: {line!r} {self.proc.stderr.read()}")
        self.url, self.banner = match.group(0), line

    def stop(self, sig=signal.SIGTERM) -> int:
        self.proc.send_signal(sig)
        return self.proc.wait(timeout=60)


def create_key(state_dir: Path, name="test", budget=None) -> str:
    args = [
        sys.executable,
        "-m",
        "cs336_scaling.cli",
        "keys",
        "--state-dir",
        str(state_dir),
        "create",
        name,
    ]
    if budget is not None:
        args += ["--budget", str(budget)]
    return subprocess.run(args, check=True, capture_output=True, text=True).stdout.strip()


def wait_for(predicate, timeout=60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise TimeoutError("condition not met in time")


@pytest.fixture(scope="session")
def svc():
    """``svc.Server(state_dir, settings)``, ``svc.create_key``, ``svc.wait_for``, ``svc.TINY``."""
    return SimpleNamespace(Server=Server, create_key=create_key, wait_for=wait_for, TINY=TINY)
