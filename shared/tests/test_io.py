import os
import stat

import pytest

from cs336_common.io import atomic_path, write_text_atomic


def test_atomic_write_replaces_and_failure_keeps_old(tmp_path):
    target = tmp_path / "sub" / "f.txt"
    write_text_atomic(target, "one")
    assert target.read_text() == "one"
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("crash mid-write")
    assert target.read_text() == "one"
    assert [p.name for p in target.parent.iterdir()] == ["f.txt"]


def test_atomic_write_respects_umask(tmp_path):
    old = os.umask(0o027)
    try:
        write_text_atomic(tmp_path / "f.txt", "x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "f.txt").stat().st_mode) == 0o640


def test_atomic_write_leaves_the_umask_alone(tmp_path, monkeypatch):
    def no_umask(mask):
        raise AssertionError("atomic_path must not change the process umask")

    monkeypatch.setattr(os, "umask", no_umask)
    write_text_atomic(tmp_path / "f.txt", "x")
    assert (tmp_path / "f.txt").read_text() == "x"
