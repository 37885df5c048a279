import gzip
import io

import pytest

import cs336_basics.download as download
from cs336_basics.cli import main


def test_fetch_file_url_and_gunzip(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    text = "Once upon a time\n" * 1000
    (src / "a.txt").write_text(text)
    with gzip.open(src / "b.txt.gz", "wt") as f:
        f.write(text)
    out = tmp_path / "out"
    a = download.fetch((src / "a.txt").as_uri(), out, progress=False)
    b = download.fetch((src / "b.txt.gz").as_uri(), out, progress=False)
    assert a.read_text() == b.read_text() == text
    assert sorted(p.name for p in out.iterdir()) == ["a.txt", "b.txt"]
    (src / "a.txt").unlink()  # already downloaded: not fetched again
    assert download.fetch((src / "a.txt").as_uri(), out, progress=False) == a


def test_cli_downloads_a_dataset(tmp_path, monkeypatch, capsys):
    (tmp_path / "train.txt").write_text("hello")
    monkeypatch.setitem(download.DATASETS, "tinystories", [(tmp_path / "train.txt").as_uri()])
    assert (
        main(["data", "download", "tinystories", "--out", str(tmp_path / "d"), "--no-progress"])
        == 0
    )
    assert (tmp_path / "d" / "train.txt").read_text() == "hello"


class _Response(io.BytesIO):
    def __init__(self, body, status):
        super().__init__(body)
        self.status = status
        self.headers = {"Content-Length": str(len(body))}


@pytest.mark.parametrize("server_resumes", [True, False])
def test_interrupted_download_resumes(tmp_path, monkeypatch, server_resumes):
    body = bytes(range(256)) * 100
    (tmp_path / "f.bin.part").write_bytes(body[:1000])
    ranges = []

    def urlopen(request, timeout):
        ranges.append(request.get_header("Range"))
        if server_resumes:
            return _Response(body[1000:], 206)
        return _Response(body, 200)  # a server without Range support sends it all

    monkeypatch.setattr(download.urllib.request, "urlopen", urlopen)
    assert (
        download.fetch("https://example.org/f.bin", tmp_path, progress=False).read_bytes() == body
    )
    assert ranges == ["bytes=1000-"]
    assert not (tmp_path / "f.bin.part").exists()


def test_truncated_download_is_an_error(tmp_path, monkeypatch):
    class Short(_Response):
        def __init__(self):
            super().__init__(b"abc", 200)
            self.headers = {"Content-Length": "10"}

    monkeypatch.setattr(download.urllib.request, "urlopen", lambda request, timeout: Short())
    with pytest.raises(OSError, match="resume"):
        download.fetch("https://example.org/g.bin", tmp_path, progress=False)
    assert (tmp_path / "g.bin.part").read_bytes() == b"abc"
