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


def _member_dependencies(pyproject) -> list[str]:
    import re
    import tomllib

    deps = tomllib.loads(pyproject.read_text())["project"]["dependencies"]
    return [re.split(r"[\s<>=!~;\[]", d, maxsplit=1)[0] for d in deps]


def test_members_depend_on_common_only():
    """The assignment packages are independent: each depends on cs336-common and
    third-party packages, never on another member."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    members = {f"cs336-{name}" for name in PACKAGES}
    for name in PACKAGES:
        deps = _member_dependencies(root / "packages" / name / "pyproject.toml")
        assert "cs336-common" in deps, f"cs336-{name} must depend on cs336-common"
        assert not members & set(deps), f"cs336-{name} depends on {members & set(deps)}"
    assert not members & set(_member_dependencies(root / "shared" / "pyproject.toml"))
