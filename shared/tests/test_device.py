import time

import pytest
import torch

from cs336_common.device import Timer, resolve_device, synchronize
from cs336_common.errors import InputError


def test_resolve_device_names_and_auto():
    assert resolve_device("cpu") == torch.device("cpu")
    auto = resolve_device("auto")
    assert auto.type == ("cuda" if torch.cuda.is_available() else auto.type)
    synchronize(auto)  # never fails on the device it chose


def test_timer_measures_the_block():
    with Timer("cpu") as t:
        time.sleep(0.05)
    assert 0.045 <= t.seconds < 1.0


def test_resolve_device_refuses_what_this_machine_lacks():
    with pytest.raises(InputError, match="unknown device 'gpu0'"):
        resolve_device("gpu0")
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    with pytest.raises(InputError, match="device 'cuda:9'"):  # no machine here has 10 GPUs
        resolve_device("cuda:9")
    if count == 0:
        with pytest.raises(InputError, match="no CUDA GPU; use auto or cpu"):
            resolve_device("cuda")


def test_tf32_matmuls_switches_only_inside_the_block_and_only_on_cuda():
    """CUDA training and benchmarks use TF32 matmuls; the process gets its own setting
    back afterwards (a library call must not leave exact-fp32 callers, e.g. later tests,
    on TF32), also when the block raises."""
    from cs336_common.device import tf32_matmuls

    torch.set_float32_matmul_precision("highest")
    with tf32_matmuls(torch.device("cuda")):
        assert torch.get_float32_matmul_precision() == "high"
    assert torch.get_float32_matmul_precision() == "highest"
    with tf32_matmuls(torch.device("cpu")):
        assert torch.get_float32_matmul_precision() == "highest"
    with pytest.raises(KeyError), tf32_matmuls(torch.device("cuda")):
        raise KeyError("x")
    assert torch.get_float32_matmul_precision() == "highest"
