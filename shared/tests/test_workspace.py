"""The workspace contract: every package has a working console script."""

import shutil
import subprocess

import pytest

PACKAGES = ["basics", "systems", "scaling", "data", "alignment"]


@pytest.mark.parametrize("name", PACKAGES)
def test_console_script_help(name):
    exe = shutil.which(f"cs336-{name}")
    assert exe, f"cs336-{name} is not installed in this environment"
    out = subprocess.run([exe, "--help"], capture_output=True, text=True, check=True).stdout
    assert out.startswith(f"usage: cs336-{name}")
    assert "COMMAND" in out


def test_unknown_subcommand_fails_with_usage():
    exe = shutil.which("cs336-basics")
    res = subprocess.run([exe, "no-such-command"], capture_output=True, text=True)
    assert res.returncode == 2
    assert "invalid choice" in res.stderr
