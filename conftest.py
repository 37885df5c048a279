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
