"""Every candidate config of the flash kernels compiles for Hopper under the installed
Triton, and fits an H100's shared memory: Triton's offline compile (``triton.compile`` for
an sm_90 target, through ptxas) needs no GPU, so CI catches a Triton upgrade or a config
edit that would fail only on the GPU."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cs336_common.nn import flash_attention as fa

SCRIPT = Path(__file__).with_name("flash_compile_hopper.py")
SHARDS = 2  # the CI machine's cores; each shard compiles every other candidate
HOPPER_SHARED_BYTES = 232448  # an H100/H200 block's dynamic shared memory limit (227 KiB)


def _has_nvidia_backend() -> bool:
    try:
        from triton.backends.nvidia import compiler  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.mark.skipif(not _has_nvidia_backend(), reason="Triton without its CUDA backend")
def test_every_flash_candidate_compiles_for_hopper(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env["TRITON_CACHE_DIR"] = str(tmp_path)  # compile for real, not from a cache
    env["TRITON_DEFAULT_FP_FUSION"] = "1"  # what the GPU runs use; silences 3.9's warning
    shards = [
        subprocess.Popen(
            [sys.executable, str(SCRIPT), str(i), str(SHARDS)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(SHARDS)
    ]
    rows = []
    for proc in shards:
        out, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err[-2000:]
        rows += [json.loads(line) for line in out.splitlines()]

    # every candidate of every kernel and kind, causal and not
    assert len(rows) == 2 * sum(len(c) for k in fa._SPACES.values() for c in k.values())
    failed = [f"{_name(r)}: {r['error']}" for r in rows if "error" in r]
    assert not failed, "\n".join(failed)
    too_big = [f"{_name(r)}: {r['shared']} B" for r in rows if r["shared"] > HOPPER_SHARED_BYTES]
    assert not too_big, "shared memory over an H100's:\n" + "\n".join(too_big)


def _name(row: dict) -> str:
    return f"{row['kernel']} {row['kind']} {tuple(row['config'])} causal={row['causal']}"
