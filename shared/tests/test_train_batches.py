import numpy as np
import pytest
import torch

from cs336_common.train import RandomBatches, batches, get_batch
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


def _same_batches(a, b, n=5):
    for _ in range(n):
        (xa, ya), (xb, yb) = next(a), next(b)
        assert xa.dtype == xb.dtype == torch.int64
        assert torch.equal(xa.cpu(), xb.cpu()) and torch.equal(ya.cpu(), yb.cpu())


@pytest.mark.parametrize("vocab", [60_000, 3_000_000_000])  # uint16 and uint32 ids
def test_batches_from_the_device_copy_equal_the_host_ones(tmp_path, vocab, monkeypatch):
    # ids above the signed range of their width: the device copy stores them signed
    ids = np.random.default_rng().integers(vocab - 100, vocab, size=5000)
    save_token_file(tmp_path / "t.bin", ids, vocab)
    mm = open_token_file(tmp_path / "t.bin")
    monkeypatch.setattr(batches, "_UPLOAD_CHUNK", 777)  # several chunks, a ragged last one
    host = RandomBatches(mm, 16, 32, "cpu", seed=3)
    dev = RandomBatches(mm, 16, 32, "cpu", seed=3, on_device=True)
    assert dev._tokens.dtype == (torch.int16 if vocab < 2**16 else torch.int32)
    _same_batches(host, dev)
    # a resumed iterator continues with the same batches, whichever copy it reads
    resumed = RandomBatches(mm, 16, 32, "cpu", seed=99, on_device=True)
    resumed.load_state_dict(host.state_dict())
    _same_batches(host, resumed)


def test_on_device_needs_token_file_ids():
    with pytest.raises(ValueError, match="uint16 or uint32"):
        RandomBatches(np.arange(100), 2, 4, "cpu", on_device=True)


@pytest.mark.gpu
def test_batches_gathered_on_the_gpu_equal_the_host_ones(tmp_path):
    ids = np.random.default_rng(0).integers(0, 50_000, size=100_000)
    save_token_file(tmp_path / "t.bin", ids, 50_000)
    mm = open_token_file(tmp_path / "t.bin")
    host = RandomBatches(mm, 64, 128, "cuda", seed=1)
    dev = RandomBatches(mm, 64, 128, "cuda", seed=1, on_device=True)
    assert dev._tokens.is_cuda
    _same_batches(host, dev, n=20)
