import gzip
import json
import subprocess
import sys

import pytest

from cs336_data.cli import COMMANDS, main
from packages.data.tests.crawl import build_crawl


def test_about_names_the_package(capsys):
    assert main(["about"]) == 0
    assert capsys.readouterr().out.startswith("cs336-data ")


def test_help_lists_every_stage(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    for name in (
        "pipeline",
        "extract",
        "langid",
        "mask",
        "classify",
        "filter",
        "dedup",
        "tokenize",
    ):
        assert name in out and name in COMMANDS


def test_stage_help_names_its_options(capsys):
    with pytest.raises(SystemExit):
        main(["dedup", "--help"])
    out = capsys.readouterr().out
    for opt in ("--method", "--num-bands", "--threshold", "--executor", "--workers", "--partition"):
        assert opt in out


def test_example_config_is_a_valid_config(tmp_path, capsys):
    from cs336_data.config import load_config

    assert main(["pipeline", "--example-config"]) == 0
    path = tmp_path / "p.toml"
    path.write_text(capsys.readouterr().out)
    cfg = load_config(path)
    assert [name for name, _ in cfg.steps] == ["langid", "gopher", "harmful", "quality", "mask"]
    assert cfg.minhash.num_bands == 16 and cfg.tokenizer == "gpt2"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["extract", "nope/*.warc.gz", "-o", "{tmp}/o"], "input nope/*.warc.gz: no such file"),
        (["dedup", "{tmp}/in.warc", "-o", "{tmp}", "--method", "exact"], "holds input"),
        (["extract", "{tmp}/in.warc", "-o", "{tmp}/in.pdf"], "--out {tmp}/in.pdf is a file"),
        (["tokenize", "{tmp}/in.warc", "-o", "{tmp}"], "--out {tmp} is a folder"),
        (
            [
                *["quality", "train", "--positives", "{tmp}/in.warc", "--negatives"],
                *["{tmp}/in.pdf", "--out", "{tmp}/in.pdf"],
            ],
            "is also an input",
        ),
        (["pipeline", "--config", "{tmp}/mem.toml"], "[executor] mem_gb must be > 0"),
        (
            ["dedup", "{tmp}/in.warc", "-o", "{tmp}/o", "--num-hashes", "10", "--num-bands", "3"],
            "multiple of num_bands",
        ),
        (["extract", "{tmp}/in.pdf", "-o", "{tmp}/o"], "unknown input type"),
        (["pipeline", "--config", "{tmp}/missing.toml"], "missing.toml: no such file"),
        (["pipeline", "--config", "{tmp}/bad.toml"], "[langid] unknown option 'langs'"),
        (
            ["tokenize", "{tmp}/in.warc", "-o", "{tmp}/t.bin", "--tokenizer", "{tmp}/none"],
            "no tokenizer",
        ),
        (
            ["langid", "{tmp}/in.warc", "-o", "{tmp}/o", "--model", "{tmp}/none.bin"],
            "error: [langid] model {tmp}/none.bin: no such file",
        ),
        (
            ["classify", "{tmp}/in.warc", "-o", "{tmp}/o", "--toxic-model", "{tmp}/none.bin"],
            "error: [harmful] toxic_model {tmp}/none.bin: no such file",
        ),
        (
            ["pipeline", "--config", "{tmp}/score.toml"],
            "error: [langid] min_score must be a number in [0, 1], got 7",
        ),
        (
            ["pipeline", "--config", "{tmp}/lang.toml"],
            "error: [langid] languages must be a list of ISO codes like ['en'], got 'en'",
        ),
        (
            ["pipeline", "--config", "{tmp}/none.toml"],
            "error: config {tmp}/none.toml: 'inputs' must name at least one file",
        ),
        (
            [
                *["quality", "train", "--positives", "{tmp}/text.txt", "--negatives"],
                *["{tmp}/in.pdf", "--out", "{tmp}/q.bin"],
            ],
            "error: {tmp}/in.pdf: no text (one document a line); need both labels",
        ),
    ],
)
def test_expected_mistakes_are_one_line_and_exit_1(tmp_path, argv, message):
    (tmp_path / "in.warc").write_bytes(b"")
    (tmp_path / "in.pdf").write_bytes(b"")
    (tmp_path / "bad.toml").write_text(
        'inputs = ["in.warc"]\noutput = "o"\n[langid]\nlangs = ["en"]\n'
    )
    (tmp_path / "mem.toml").write_text(
        'inputs = ["in.warc"]\noutput = "o"\n[executor]\nmem_gb = 0\n'
    )
    (tmp_path / "score.toml").write_text(
        'inputs = "in.warc"\noutput = "o"\n[langid]\nmin_score = 7\n'
    )
    (tmp_path / "lang.toml").write_text(
        'inputs = "in.warc"\noutput = "o"\n[langid]\nlanguages = "en"\n'
    )
    (tmp_path / "none.toml").write_text('inputs = []\noutput = "o"\n')
    (tmp_path / "text.txt").write_text("a wiki page\n")
    argv = [a.format(tmp=tmp_path) for a in argv]
    message = message.format(tmp=tmp_path)
    proc = subprocess.run(
        [sys.executable, "-m", "cs336_data.cli", *argv], capture_output=True, text=True
    )
    assert proc.returncode == 1, proc.stderr
    assert message in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["dedup", "--method", "fuzzy"], "argument --method: invalid choice: 'fuzzy'"),
        (["extract", "--workers", "0"], "argument --workers: expected an integer >= 1, got '0'"),
        (["extract", "--max-bytes", "1e6"], "argument --max-bytes: expected an integer >= 1"),
        (["extract", "--mem-gb", "-2"], "argument --mem-gb: expected a finite number > 0"),
        (["extract", "--time-min", "0"], "argument --time-min: expected an integer >= 1"),
        (["classify", "--min-wiki", "1.5"], "argument --min-wiki: expected a number in [0, 1]"),
        (["classify", "--nsfw-threshold", "nan"], "argument --nsfw-threshold: expected a number"),
        (["langid", "--min-score", "-0.1"], "argument --min-score: expected a number in [0, 1]"),
        (["dedup", "--threshold", "0"], "argument --threshold: expected a number in (0, 1]"),
        (["dedup", "--num-bands", "0"], "argument --num-bands: expected an integer >= 1"),
        (["pipeline", "--workers", "-1"], "argument --workers: expected an integer >= 1"),
        (["quality", "--epoch", "0"], "argument --epoch: expected an integer >= 1"),
        (["langid", "--languages", "en,,de"], "argument --languages: expected 'all' or codes"),
        (["classify", "--no-harmful", "--no-quality"], "leave nothing to classify"),
    ],
)
def test_bad_values_are_usage_errors_exit_2(capsys, argv, message):
    io = {
        "pipeline": [],
        "quality": ["train", "--positives", "p", "--negatives", "n", "--out", "o"],
    }
    io = io.get(argv[0], ["x", "-o", "y"])
    with pytest.raises(SystemExit) as e:
        main([argv[0], *io, *argv[1:]])
    assert e.value.code == 2
    assert message in capsys.readouterr().err


def test_stage_commands_chain(tmp_path, capsys):
    paths = build_crawl(tmp_path / "crawl")
    run = ["--executor", "inline"]
    assert main(["extract", *map(str, paths[:2]), "-o", str(tmp_path / "x"), *run]) == 0
    assert main(["langid", str(tmp_path / "x"), "-o", str(tmp_path / "l"), *run]) == 0
    assert main(["filter", str(tmp_path / "l"), "-o", str(tmp_path / "g"), *run]) == 0
    assert main(["mask", str(tmp_path / "g"), "-o", str(tmp_path / "m"), *run]) == 0
    assert main(["dedup", str(tmp_path / "m"), "-o", str(tmp_path / "d"), *run]) == 0
    assert main(["tokenize", str(tmp_path / "d"), "-o", str(tmp_path / "t.bin"), *run]) == 0
    out = capsys.readouterr().out
    assert "\ngopher " in out and "near_duplicate 2" in out and "tokens ->" in out
    with gzip.open(tmp_path / "m/crawl-a.jsonl.gz", "rt") as f:
        docs = [json.loads(line) for line in f]
    assert any("|||EMAIL_ADDRESS|||" in d["text"] for d in docs)
    report = json.loads((tmp_path / "x/report.json").read_text())
    assert report["stages"]["extract"]["removed"] == {"not_html": 2, "empty": 1}


def test_quality_train_command(tmp_path, fixtures, capsys):
    from cs336_data.quality import classify_quality

    wiki = (fixtures / "high_quality_wiki_reference.txt").read_text().splitlines()
    pos, neg = tmp_path / "pos.txt", tmp_path / "neg.txt"
    pos.write_text("\n".join(line for line in wiki if len(line) > 200))
    neg.write_text(
        "\n".join(f"login register cart page {i} click here buy now" for i in range(200))
    )
    out = tmp_path / "q.bin"
    assert main(["quality", "train", "--positives", str(pos), "--negatives", str(neg),
                 "--out", str(out), "--no-quantize"]) == 0  # fmt: skip
    assert "trained on" in capsys.readouterr().out
    assert classify_quality(wiki[5], str(out))[0] == "wiki"
    assert classify_quality("click here buy now login register cart", str(out))[0] == "cc"


@pytest.mark.parametrize(
    ("argv", "example"),
    [
        (["quality", "train"], "example: cs336-data quality train --positives wiki.txt"),
        (["models", "download"], "example: cs336-data models download --out models/"),
    ],
)
def test_action_help_shows_an_example(capsys, argv, example):
    with pytest.raises(SystemExit) as e:
        main([*argv, "--help"])
    assert e.value.code == 0 and example in capsys.readouterr().out


def test_a_rerun_with_other_options_is_refused(tmp_path, capsys):
    (tmp_path / "in.warc").write_bytes(b"")
    argv = ["langid", str(tmp_path / "in.warc"), "-o", str(tmp_path / "o"), "--executor"]
    assert main([*argv, "inline"]) == 0
    assert main([*argv, "local", "--workers", "1"]) == 0  # how it runs may change
    capsys.readouterr()
    assert main([*argv, "inline", "--min-score", "0.3"]) == 1
    err = capsys.readouterr().err
    assert err == (
        f"cs336-data: error: --out {tmp_path / 'o'} holds results made with other options "
        "(min_score: 0.65 then, 0.3 now); use another folder or delete it\n"
    )


def test_a_pipeline_rerun_with_another_config_is_refused(tmp_path, capsys):
    (tmp_path / "in.warc").write_bytes(b"")
    config = 'inputs = ["in.warc"]\noutput = "o"\n[executor]\nkind = "inline"\n[minhash]\n'
    (tmp_path / "p.toml").write_text(config)
    assert main(["pipeline", "--config", str(tmp_path / "p.toml")]) == 0
    (tmp_path / "p.toml").write_text(config + "ngrams = 3\n")
    capsys.readouterr()
    assert main(["pipeline", "--config", str(tmp_path / "p.toml")]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"cs336-data: error: output {tmp_path / 'o'} holds results made with")
    assert "(minhash: {" in err and err.count("\n") == 1


def test_tokenize_again_with_another_tokenizer_is_refused(tmp_path, capsys):
    from cs336_data.tokenize_stage import load_tokenizer

    shard = tmp_path / "docs.jsonl"
    shard.write_text('{"id": "1", "text": "hello world", "metadata": {}}\n')
    other = load_tokenizer("gpt2").save(tmp_path / "tok")
    argv = ["tokenize", str(shard), "-o", str(tmp_path / "t.bin"), "--executor", "inline"]
    assert main(argv) == 0
    capsys.readouterr()
    assert main([*argv, "--tokenizer", str(other)]) == 1
    assert capsys.readouterr().err == (
        f"cs336-data: error: --out {tmp_path / 't.bin'}: its work folder {tmp_path / '_work_tokens'} "
        "holds results made with other "
        f"options (tokenizer: 'gpt2' then, '{other}' now); use another folder or delete it\n"
    )
