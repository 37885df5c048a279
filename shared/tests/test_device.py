import time

import torch

from cs336_common.device import Timer, resolve_device, synchronize


def test_resolve_device_names_and_auto():
    assert resolve_device("cpu") == torch.device("cpu")
    auto = resolve_device("auto")
    assert auto.type == ("cuda" if torch.cuda.is_available() else auto.type)
    synchronize(auto)  # never fails on the device it chose


def test_timer_measures_the_block():
    with Timer("cpu") as t:
        time.sleep(0.05)
    assert 0.045 <= t.seconds < 1.0
