import signal
import subprocess
import sys

import pytest

from cs336_common.lock import DirectoryLocked, locked_dir

_HOLD = """
import sys, time
from cs336_common.lock import locked_dir
with locked_dir(sys.argv[1]):
    print("locked", flush=True)
    time.sleep(600)
"""


def test_second_process_is_refused_and_a_killed_holder_releases(tmp_path):
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLD, str(tmp_path / "run")], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        with (
            pytest.raises(DirectoryLocked, match=rf"in use by process {holder.pid} on .*-c"),
            locked_dir(tmp_path / "run"),
        ):
            pass
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    with locked_dir(tmp_path / "run") as path:  # the kernel dropped the dead holder's lock
        assert path == tmp_path / "run"
    with locked_dir(tmp_path / "run"):  # and this process released its own on exit
        pass
