"""`cs336-basics tokenizer train|encode` end to end on a small file."""

import json
import re
from pathlib import Path

from cs336_basics.cli import main
from cs336_common import Tokenizer
from cs336_common.train.token_file import open_token_file

FIXTURES = Path(__file__).parent / "fixtures"
EOT = "<|endoftext|>"


def test_train_then_encode(tmp_path, capsys):
    corpus = FIXTURES / "corpus.en"
    tok_dir = tmp_path / "tok"
    args = ["--input", str(corpus), "--vocab-size", "300", "--special-token", EOT]
    main(["tokenizer", "train", *args, "--out", str(tok_dir)])
    summary = json.loads((tok_dir / "summary.json").read_text())
    tokenizer = Tokenizer.load(tok_dir)
    assert tokenizer.vocab_size == summary["vocab_size"] == 300
    assert tokenizer.special_tokens == [EOT]
    assert 1 < summary["bytes_per_token"] < 4
    assert len(summary["longest_token"].encode()) == summary["longest_token_bytes"] > 2

    out = tmp_path / "corpus.bin"
    main(["tokenizer", "encode", "--tokenizer", str(tok_dir), "--input", str(corpus), "--out", str(out), "--workers", "2"])  # fmt: skip
    assert "MB/s" in capsys.readouterr().out
    ids = open_token_file(out)
    assert ids.tolist() == tokenizer.encode(corpus.read_text(encoding="utf-8"))


def test_errors_write_nothing(tmp_path, capsys):
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"ok \xff")
    for argv, message in (
        (["--input", str(tmp_path / "missing.txt"), "--vocab-size", "300"], "not found"),
        (["--input", str(bad), "--vocab-size", "300"], r"bad\.txt: invalid UTF-8 at byte 3"),
        (["--input", str(bad), "--vocab-size", "100"], "vocab_size=100 is too small"),
    ):
        assert main(["tokenizer", "train", *argv, "--out", str(tmp_path / "tok")]) == 1
        err = capsys.readouterr().err.splitlines()
        assert re.match(f"cs336-basics: error: .*{message}", err[-1]), err
    assert not (tmp_path / "tok").exists()
