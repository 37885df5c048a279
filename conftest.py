"""Root pytest configuration shared by every package's tests."""

import os

import pytest
import torch

# Without CUDA, Triton kernels run in Triton's CPU interpreter. The switch must be on
# before anything imports triton: triton.language's own @jit helpers are compiled or
# interpreted once, at import, and torch.compile tests import triton early.
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip_gpu = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip_gpu)


@pytest.fixture(autouse=True)
def _seed_everything():
    """Every test starts from the same random state, so a randomised test that fails
    fails again on a re-run (tests that need other seeds set their own)."""
    import random

    import numpy as np

    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)
