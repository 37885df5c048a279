import numpy as np
import pytest

from cs336_common.train.token_file import open_token_file, save_token_file, token_dtype


@pytest.mark.parametrize(
    "vocab_size, dtype", [(256, np.uint16), (65536, np.uint16), (65537, np.uint32)]
)
def test_round_trip_uses_smallest_dtype(tmp_path, vocab_size, dtype):
    rng = np.random.default_rng()
    ids = rng.integers(0, vocab_size, size=1000)
    path = tmp_path / "tokens.bin"
    save_token_file(path, ids, vocab_size)
    back = open_token_file(path)
    assert back.dtype == dtype == token_dtype(vocab_size)
    np.testing.assert_array_equal(back, ids)
    assert path.stat().st_size == 1000 * np.dtype(dtype).itemsize


def test_truncated_file_is_reported(tmp_path):
    path = tmp_path / "tokens.bin"
    save_token_file(path, np.arange(10), 100)
    path.write_bytes(path.read_bytes()[:-2])
    with pytest.raises(ValueError, match="truncated"):
        open_token_file(path)


def test_missing_sidecar_and_bad_ids(tmp_path):
    path = tmp_path / "tokens.bin"
    path.write_bytes(b"\0\0")
    with pytest.raises(FileNotFoundError, match=r"tokens\.bin\.json"):
        open_token_file(path)
    with pytest.raises(ValueError, match=r"\[0, 5\)"):
        save_token_file(tmp_path / "x.bin", [1, 7], 5)
    assert not (tmp_path / "x.bin").exists()
