import os

import pytest

from cs336_common.checks import check_output, parse_jsonl, read_json
from cs336_common.errors import InputError, UserError


def test_output_may_not_replace_an_input(tmp_path):
    src = tmp_path / "in.txt"
    src.write_text("corpus")
    os.symlink(src, tmp_path / "link.txt")
    for out in (src, tmp_path / "link.txt", tmp_path / "sub" / ".." / "in.txt"):
        with pytest.raises(UserError, match=r"--out .* is also an input .*in\.txt"):
            check_output(out, inputs=[src])
    assert check_output(tmp_path / "new.bin", inputs=[src]) == tmp_path / "new.bin"
    assert src.read_text() == "corpus"


def test_output_kind_suffix_and_folder(tmp_path):
    (tmp_path / "f").write_text("x")
    (tmp_path / "d").mkdir()
    with pytest.raises(UserError, match=r"d is a folder; it must be a file name"):
        check_output(tmp_path / "d")
    with pytest.raises(UserError, match=r"f is a file; it must be a folder"):
        check_output(tmp_path / "f", directory=True)
    with pytest.raises(UserError, match=r"f is a file, not a folder"):
        check_output(tmp_path / "f" / "a" / "b.png")
    with pytest.raises(UserError, match=r"--plot .*x\.PDFf: the file name must end in \.png"):
        check_output(tmp_path / "x.PDFf", suffixes=(".png",), flag="--plot")
    assert check_output(tmp_path / "x.PNG", suffixes=(".png",)).name == "x.PNG"
    assert check_output(tmp_path / "new" / "deep", directory=True) == tmp_path / "new" / "deep"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d", "f"]  # nothing created


@pytest.mark.skipif(not hasattr(os, "O_TMPFILE"), reason="Linux's unnamed files")
def test_checking_leaves_the_folder_as_it_was(tmp_path):
    """The write test makes an unnamed file: not even the folder's mtime changes (tools
    and tests compare it to see that a refused command wrote nothing)."""
    os.utime(tmp_path, (1, 1))
    check_output(tmp_path / "x.bin")
    check_output(tmp_path / "new" / "d", directory=True)
    assert tmp_path.stat().st_mtime == 1 and list(tmp_path.iterdir()) == []


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere")
def test_output_in_a_read_only_folder(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir(mode=0o555)
    with pytest.raises(UserError, match=r"cannot write in .*ro \(Permission denied\)"):
        check_output(ro / "x.bin")


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs Linux's /proc and /sys")
def test_output_where_nothing_can_be_created_even_by_root():
    """os.access says yes to root for /proc and /sys; creating a file there fails."""
    with pytest.raises(UserError, match=r"--out /proc/cs336/o\.bin: cannot write in /proc \("):
        check_output("/proc/cs336/o.bin")
    with pytest.raises(UserError, match=r"--runs /sys/kernel/cs336: cannot write in /sys/kernel"):
        check_output("/sys/kernel/cs336", directory=True, flag="--runs")


def test_read_json_names_the_file(tmp_path):
    path = tmp_path / "c.json"
    path.write_text('{"a": 1,}')
    with pytest.raises(InputError, match=r"c\.json: malformed JSON .*line 1 column 9"):
        read_json(path)
    path.write_bytes(b'{"a": "\xff"}')
    with pytest.raises(InputError, match=r"c\.json: not UTF-8 text"):
        read_json(path)
    with pytest.raises(FileNotFoundError, match=r"sidecar not found: .*nope\.json"):
        read_json(tmp_path / "nope.json", "sidecar")
    path.write_text('{"a": [1, 2]}')
    assert read_json(path) == {"a": [1, 2]}


def test_parse_jsonl_names_the_line_at_fault():
    assert parse_jsonl(b'{"a": 1}\n\n{"b": [2]}\n', "f.jsonl") == [{"a": 1}, {"b": [2]}]
    assert parse_jsonl(b"\n \n", "f.jsonl") == []
    for raw, message in [
        (b'{"a": 1}\n{"a": \n', r"f\.jsonl:2: malformed JSON"),
        (b'{"a": 1}\n[1]\n', r"f\.jsonl:2: expected a JSON object, got list"),
        (b'{"a": "\xff"}\n', r"f\.jsonl: not UTF-8 text \(invalid start byte at byte 7\)"),
    ]:
        with pytest.raises(InputError, match=message):
            parse_jsonl(raw, "f.jsonl")
