import math
import random

from cs336_common.train import get_lr_cosine_schedule


def test_warmup_cosine_and_floor():
    lo, hi = random.uniform(0, 1e-4), random.uniform(1e-3, 1e-2)
    warmup, cycle = 10, 110
    lrs = [get_lr_cosine_schedule(t, hi, lo, warmup, cycle) for t in range(200)]
    assert lrs[0] == 0
    assert math.isclose(lrs[5], hi / 2)
    assert math.isclose(lrs[warmup], hi)
    # halfway through the cosine: the midpoint of hi and lo
    assert math.isclose(lrs[60], (hi + lo) / 2)
    assert math.isclose(lrs[85], lo + (hi - lo) * (1 + math.cos(math.pi * 0.75)) / 2)
    assert all(a >= b for a, b in zip(lrs[warmup:], lrs[warmup + 1 :], strict=False))
    assert all(lr == lo for lr in lrs[cycle:])


def test_no_warmup():
    assert get_lr_cosine_schedule(0, 1.0, 0.1, 0, 100) == 1.0
