import json
import os

import numpy as np
import pytest

from cs336_common.errors import InputError
from cs336_common.train.token_file import (
    check_token_ids,
    open_token_file,
    save_token_file,
    token_dtype,
)


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


def test_every_id_is_checked_against_the_vocabulary(tmp_path):
    ids = np.random.default_rng(0).integers(0, 100, size=10_000)
    ids[7_777] = 100
    path = tmp_path / "t.bin"
    save_token_file(path, ids, 101)
    for chunk in (1000, 7777, 7778, 1 << 24):  # the bad id in every place relative to a chunk
        with pytest.raises(InputError, match=r"t\.bin: token id 100 at position 7,777 is >= "):
            check_token_ids(open_token_file(path), 100, path, chunk=chunk)
    check_token_ids(open_token_file(path), 101, path, chunk=1000)
    with pytest.raises(InputError, match=r"vocabulary of 101 tokens, but the model has vocab"):
        open_token_file(path, vocab_size=100)
    assert len(open_token_file(path, vocab_size=101)) == 10_000


@pytest.mark.parametrize(
    "meta, match",
    [
        ({"dtype": "<f4", "num_tokens": 2}, r"dtype '<f4' is not a little-endian unsigned"),
        ({"dtype": "<i4", "num_tokens": 2}, r"dtype '<i4' is not"),
        ({"dtype": ">u4", "num_tokens": 2}, r"dtype '>u4' is not"),
        ({"dtype": "bogus", "num_tokens": 2}, r"dtype 'bogus' is not"),
        ({"dtype": "<u4"}, r"missing field 'num_tokens'"),
        ({"dtype": "<u4", "num_tokens": -2}, r"num_tokens must be a non-negative integer"),
        ({"dtype": "<u4", "num_tokens": 2, "vocab_size": 2.5}, r"vocab_size must be a non-neg"),
        (["<u4"], r"expected a JSON object"),
    ],
)
def test_malformed_sidecar_is_an_input_error_naming_it(tmp_path, meta, match):
    path = tmp_path / "t.bin"
    path.write_bytes(b"\0" * 8)
    (tmp_path / "t.bin.json").write_text(json.dumps(meta))
    with pytest.raises(InputError, match=rf"t\.bin\.json: {match}"):
        open_token_file(path)
    (tmp_path / "t.bin.json").write_text('{"dtype": "<u4",')
    with pytest.raises(InputError, match=r"t\.bin\.json: malformed JSON"):
        open_token_file(path)


def test_a_file_changed_after_its_check_is_checked_again(tmp_path):
    # open_token_file scans the ids of a file once; rewriting the file (same size, a bad id
    # now) must not be hidden by that memory
    path = tmp_path / "t.bin"
    ids = np.random.default_rng(1).integers(0, 50, size=5_000)
    save_token_file(path, ids, 50)
    assert len(open_token_file(path, vocab_size=50)) == 5_000
    assert len(open_token_file(path, vocab_size=50)) == 5_000
    ids[4_321] = 55
    with open(path, "r+b") as f:  # in place: same size
        f.write(ids.astype(np.uint16).tobytes())
    stamp = path.stat().st_mtime_ns + 10**9  # file systems stamp times coarsely: be sure
    os.utime(path, ns=(stamp, stamp))
    with pytest.raises(InputError, match=r"token id 55 at position 4,321 is >= vocab_size=50"):
        open_token_file(path, vocab_size=50)
