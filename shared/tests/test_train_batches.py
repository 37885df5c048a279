import numpy as np
import pytest
import torch

from cs336_common.train import get_batch
from cs336_common.train.token_file import open_token_file, save_token_file


def test_windows_are_shifted_slices_of_a_memmap(tmp_path):
    data = np.random.default_rng().integers(0, 500, size=1000)
    save_token_file(tmp_path / "t.bin", data, 500)
    mm = open_token_file(tmp_path / "t.bin")
    x, y = get_batch(mm, 64, 16, "cpu", rng=np.random.default_rng(0))
    assert x.shape == y.shape == (64, 16) and x.dtype == y.dtype == torch.int64
    for xi, yi in zip(x.numpy(), y.numpy(), strict=True):
        starts = [s for s in range(1000 - 16) if (data[s : s + 16] == xi).all()]
        assert starts and any((data[s + 1 : s + 17] == yi).all() for s in starts)
    # same rng seed, same batch; starts spread over the whole range
    x2, _ = get_batch(mm, 64, 16, "cpu", rng=np.random.default_rng(0))
    assert torch.equal(x, x2)


def test_every_start_is_reachable():
    data = np.arange(10)
    x, y = get_batch(data, 2000, 4, "cpu")
    assert set(x[:, 0].tolist()) == set(range(6))
    assert torch.equal(y, x + 1)


def test_too_short_dataset():
    with pytest.raises(ValueError, match="context_length"):
        get_batch(np.arange(4), 2, 4, "cpu")
