"""Training the quality classifier where the heap holds old NaNs (a long-lived process)."""

import subprocess
import sys

# Leaves a freed 30 MB heap block full of NaN (glibc: after an mmapped block of that size
# is freed, blocks up to it come from the heap), then trains: fastText's input matrix
# (25.6 MB) lands on that block, and whatever its random init does not cover stays NaN.
SCRIPT = """
import sys
from pathlib import Path
import numpy as np
from cs336_data.quality import train_quality_model

tmp = Path(sys.argv[1])
(tmp / "pos.txt").write_text("\\n".join(
    f"the {i}th volume of the encyclopedia describes the history of the region" for i in range(200)))
(tmp / "neg.txt").write_text("\\n".join(
    f"login register cart page {i} click here buy now" for i in range(200)))
a = np.empty(30_000_000 // 4, np.float32)
del a
a = np.full(30_000_000 // 4, np.nan, np.float32)
del a
train_quality_model(tmp / "pos.txt", tmp / "neg.txt", tmp / "q.bin", quantize=False)
"""


def test_training_does_not_read_uninitialised_memory(tmp_path):
    """With fastText's thread=1 this raised "Encountered NaN." every time (glibc)."""
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path)], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr[-500:]
    assert (tmp_path / "q.bin").is_file()
