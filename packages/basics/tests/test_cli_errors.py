"""Every expected mistake on the `cs336-basics` command line: one line on stderr naming
the file, field or value, exit code 1 (2 for usage), no traceback, nothing written."""

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from cs336_basics import TrainConfig, train
from cs336_basics.cli import main
from cs336_common import ModelConfig, Tokenizer
from cs336_common.errors import UserError
from cs336_common.train.token_file import save_token_file

EOT = "<|endoftext|>"
FIXTURES = Path(__file__).parent / "fixtures"


def _tree(root: Path) -> dict[str, tuple[int, int]]:
    """Every file's size and time, but a run's lock file (taken, then released)."""
    return {
        str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in sorted(root.rglob("*"))
        if p.name != ".lock"
    }


def fails(argv, capsys, root: Path, match: str, code: int = 1) -> str:
    """Run the CLI; check the exit code, one error line matching `match` (the last line
    after argparse's usage for code 2), no traceback, and no file created or changed
    under `root`."""
    before = _tree(root)
    try:
        got = main([str(a) for a in argv])
    except SystemExit as e:  # argparse usage errors
        got = e.code
    out, err = capsys.readouterr()
    assert got == code, (got, out, err)
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    if code == 1:
        assert len(lines) == 1, err
    assert re.search(match, lines[-1]), lines[-1]
    assert lines[-1].startswith("cs336-basics")
    assert _tree(root) == before
    return lines[-1]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A 4-step run of a tiny model (context 8) and the byte-level tokenizer it fits."""
    root = tmp_path_factory.mktemp("run")
    tok = Tokenizer({i: bytes([i]) for i in range(256)}, [], [EOT])
    tok.save(root / "tok")
    ids = np.random.default_rng(0).integers(0, tok.vocab_size, size=3000)
    save_token_file(root / "train.bin", ids, tok.vocab_size)
    model = ModelConfig(
        vocab_size=tok.vocab_size, context_length=8, d_model=16, num_layers=1, num_heads=2
    )
    config = TrainConfig(model=model, train_data=str(root / "train.bin"), out_dir=str(root / "lm"),
                         batch_size=2, max_steps=4, log_every=2, eval_every=4, device="cpu")  # fmt: skip
    train(config, progress=False)
    return root


@pytest.fixture
def work(tmp_path, run):
    """A scratch folder holding a copy of the run, tokenizer and data."""
    for name in ("tok", "lm"):
        shutil.copytree(run / name, tmp_path / name)
    for name in ("train.bin", "train.bin.json"):
        shutil.copy(run / name, tmp_path / name)
    (tmp_path / "corpus.txt").write_text("hello world. " * 50 + EOT, encoding="utf-8")
    return tmp_path


# ---- tokenizer -------------------------------------------------------------------------


def test_encode_refuses_to_overwrite_its_input(work, capsys):
    corpus = work / "corpus.txt"
    for out in (corpus, work / "tok" / "tokenizer.json", work / "corpus"):
        if out.name == "corpus":  # the sidecar corpus.json would replace this input
            corpus = corpus.rename(work / "corpus.json")
        argv = ["tokenizer", "encode", "--tokenizer", work / "tok", "--input", corpus, "--out", out]
        fails(argv, capsys, work, r"--out .* is also an input .*overwritten")


def test_tokenizer_train_checks_outputs_before_training(work, capsys):
    (work / "taken").write_text("a file, not a folder")
    argv = ["tokenizer", "train", "--input", work / "corpus.txt", "--vocab-size", "300"]
    # one line on stderr: no progress bar, so training never started
    fails([*argv, "--out", work / "taken"], capsys, work, r"--out .*taken is a file")
    fails([*argv, "--out", work / "corpus.txt"], capsys, work, r"is a file|is also an input")
    fails([*argv, "--out", work / "taken" / "sub"], capsys, work, r"taken is a file, not a folder")


def test_tokenizer_train_refuses_an_empty_corpus_and_warns_on_few_merges(work, capsys):
    (work / "empty.txt").write_text("")
    argv = ["tokenizer", "train", "--input", work / "empty.txt", "--vocab-size", "300",
            "--special-token", EOT, "--out", work / "out"]  # fmt: skip
    fails(argv, capsys, work, r"empty\.txt: no text to train on")
    (work / "only_eot.txt").write_text(EOT * 3)
    argv[3] = work / "only_eot.txt"
    assert main([str(a) for a in argv]) == 1  # after reading it (a progress bar)
    assert re.search(r"only_eot\.txt: no text to train on", capsys.readouterr().err)
    assert not (work / "out").exists()
    (work / "tiny.txt").write_text("abab")
    argv = ["tokenizer", "train", "--input", work / "tiny.txt", "--vocab-size", "300",
            "--out", work / "out"]  # fmt: skip
    assert main([str(a) for a in argv]) == 0
    err = capsys.readouterr().err
    assert re.search(r"cs336-basics: warning: .*tiny\.txt allows only 2 merges.*258 tokens", err)
    assert Tokenizer.load(work / "out").vocab_size == 258


@pytest.mark.parametrize(
    "mangle, match",
    [
        (lambda s: s[:-20], r"tokenizer\.json: malformed JSON"),
        (lambda s: "[1, 2]", r"tokenizer\.json: expected a JSON object"),
        (lambda s: {**json.loads(s), "vocab": [1]}, r"'vocab' must be an object"),
        (lambda s: {**json.loads(s), "merges": ["Ġ"]}, r"merge 0 is 'Ġ', expected 'a b'"),
        (lambda s: {**json.loads(s), "special_tokens": "x"}, r"'special_tokens' must be a list"),
        (lambda s: {**json.loads(s), "vocab": {"0": "a"}}, r"tokenizer\.json: vocab lacks 255"),
        (lambda s: {**json.loads(s), "version": 7}, r"version 7, expected 'cs336-bpe'"),
        (lambda s: {**json.loads(s), "vocab": {"x": "a"}}, r"vocab entry 'x'"),
    ],
)
def test_malformed_tokenizer_json(work, capsys, mangle, match):
    path = work / "tok" / "tokenizer.json"
    bad = mangle(path.read_text(encoding="utf-8"))
    path.write_text(bad if isinstance(bad, str) else json.dumps(bad), encoding="utf-8")
    argv = ["tokenizer", "encode", "--tokenizer", work / "tok", "--input", work / "corpus.txt",
            "--out", work / "c.bin"]  # fmt: skip
    fails(argv, capsys, work, match)


def test_tokenizer_usage_errors(work, capsys):
    argv = ["tokenizer", "train", "--input", work / "corpus.txt", "--out", work / "o"]
    fails([*argv, "--vocab-size", "0"], capsys, work, r"--vocab-size: expected an integer >= 1", 2)
    fails([*argv, "--vocab-size", "300", "--workers", "0"], capsys, work, r"--workers", 2)
    fails([*argv, "--vocab-size", "100"], capsys, work, r"vocab_size=100 is too small")
    argv[3] = work / "nope.txt"
    fails([*argv, "--vocab-size", "300"], capsys, work, r"input file not found: .*nope\.txt")
    fails([*argv, "--vocab-size", "300", "--special-token", ""], capsys, work,
          r"--special-token: a special token cannot be empty", 2)  # fmt: skip


# ---- generate --------------------------------------------------------------------------


def _generate(work, *extra):
    return ["generate", "--run", work / "lm", "--tokenizer", work / "tok", "--prompt", "ab",
            "--device", "cpu", "--max-new-tokens", "2", *extra]  # fmt: skip


def test_generate_works_on_the_fixture(work, capsys):
    assert main([str(a) for a in _generate(work, "--seed", "0")]) == 0
    assert capsys.readouterr().out.startswith("ab")
    argv = _generate(work, "--seed", "0")
    del argv[3:5]  # no --tokenizer: the run's own copy, if it keeps one
    fails(argv, capsys, work, r"--run .*lm keeps no tokenizer .*pass --tokenizer DIR", code=2)
    shutil.copytree(work / "tok", work / "lm" / "tokenizer")
    assert main([str(a) for a in argv]) == 0
    assert capsys.readouterr().out.startswith("ab")


@pytest.mark.parametrize(
    "extra, match",
    [
        (["--top-p", "0"], r"--top-p: expected a number in \(0, 1\], got '0'"),
        (["--top-p", "1.5"], r"--top-p: expected a number in \(0, 1\]"),
        (["--temperature", "-1"], r"--temperature: expected a finite number >= 0"),
        (["--temperature", "nan"], r"--temperature: expected a finite number >= 0"),
        (["--max-new-tokens", "-1"], r"--max-new-tokens: expected an integer >= 0"),
    ],
)
def test_generate_bad_sampling_values_are_usage_errors(work, capsys, extra, match):
    fails(_generate(work, *extra), capsys, work, match, code=2)


def test_generate_run_errors(work, capsys):
    argv = _generate(work)
    argv[2] = work / "missing"
    fails(argv, capsys, work, r"--run .*missing: no such training run directory")
    (work / "empty_run").mkdir()
    argv[2] = work / "empty_run"
    fails(argv, capsys, work, r"empty_run/config\.json not found")
    argv[2] = work / "tok"  # a folder, but not a run: say so, not "keeps no tokenizer"
    del argv[3:5]
    fails(argv, capsys, work, r"--run .*tok: .*tok/config\.json not found; not a training run")
    argv = _generate(work)
    fails(_generate(work, "--device", "nonsense"), capsys, work, r"unknown device 'nonsense'")
    fails(_generate(work, "--prompt", "x" * 9), capsys, work,
          r"--prompt 2 is 9 tokens long; .* context_length=8")  # fmt: skip
    fails(_generate(work, "--eos-token", "", "--prompt", ""), capsys, work, r"--prompt 2 is empty")


def test_generate_malformed_run_config_names_the_file(work, capsys):
    (work / "lm" / "config.json").write_text("{")
    fails(_generate(work), capsys, work, r"lm/config\.json'?: Expecting")


def test_generate_corrupt_checkpoint(work, capsys):
    (ckpt,) = (work / "lm" / "checkpoints").glob("step_*.pt")
    ckpt.write_bytes(ckpt.read_bytes()[:1000])
    fails(_generate(work), capsys, work, r"--run .*lm: cannot load its model .*step_00000004\.pt")
    ckpt.unlink()
    fails(_generate(work), capsys, work, r"checkpoints holds no checkpoint")


def test_generate_refuses_a_tokenizer_of_another_size_than_the_model(work, capsys):
    big = Tokenizer({i: bytes([i]) for i in range(256)}, [], [EOT, "<a>", "<b>"])
    big.save(work / "big")
    argv = _generate(work)
    argv[4] = work / "big"
    fails(argv, capsys, work, r"--tokenizer .*big has 259 tokens .* vocab_size=257")
    # smaller: the model would sample ids the tokenizer cannot decode
    Tokenizer({i: bytes([i]) for i in range(256)}, [], []).save(work / "small")
    argv[4] = work / "small"
    fails(argv, capsys, work, r"--tokenizer .*small has 256 tokens .* vocab_size=257")


# ---- train -----------------------------------------------------------------------------


def _config(work, **settings) -> Path:
    base = {"train_data": str(work / "train.bin"), "out_dir": str(work / "runs" / "a"),
            "batch_size": 2, "max_steps": 2, "device": "cpu"}  # fmt: skip
    body = "\n".join(f"{k} = {json.dumps(v)}" for k, v in {**base, **settings}.items())
    path = work / "c.toml"
    path.write_text(body + "\n[model]\nvocab_size = 257\ncontext_length = 8\nd_model = 16\n"
                    "num_layers = 1\nnum_heads = 2\n")  # fmt: skip
    return path


def test_train_config_mistakes(work, capsys):
    cfg = _config(work)
    fails(["train", cfg, "--set", "model.d_model=abc"], capsys, work,
          r"c\.toml: ModelConfig\.d_model must be a positive int, got 'abc'")  # fmt: skip
    fails(["train", cfg, "--set", "lr"], capsys, work, r"--set 'lr': expected KEY=VALUE")
    fails(["train", work / "nope.toml"], capsys, work, r"config '.*nope\.toml' is neither a file")
    fails(["train", cfg, "--resume", work / "lm"], capsys, work, r"drop CONFIG", code=2)
    fails(["train"], capsys, work, r"give a CONFIG file", code=2)
    fails(["train", "--resume", work / "nowhere"], capsys, work, r"nowhere/config\.json not found")
    (work / "bad.toml").write_text("lr = = 3\n")
    fails(["train", work / "bad.toml"], capsys, work, r"config .*bad\.toml: .*line 1")
    (work / "bad.toml").write_bytes(b"lr = 3\n\xff\n")
    fails(["train", work / "bad.toml"], capsys, work,
          r"config .*bad\.toml: not UTF-8 text \(invalid start byte at byte 7\)$")  # fmt: skip


def test_train_yaml_error_names_the_file(work, capsys):
    pytest.importorskip("yaml")
    (work / "bad.yaml").write_text("lr: [1, 2\n")
    fails(
        ["train", work / "bad.yaml"],
        capsys,
        work,
        r"config .*bad\.yaml: expected ',' or '\]', but got '<stream end>' at line 2, column 1$",
    )


def test_train_data_checks(work, capsys):
    # an id past the vocabulary beyond the first million tokens: the whole file is checked
    ids = np.zeros((1 << 20) + 100, dtype=np.int64)
    ids[-3] = 256
    save_token_file(work / "big.bin", ids, 300)
    meta = json.loads((work / "big.bin.json").read_text())
    (work / "big.bin.json").write_text(json.dumps({**meta, "vocab_size": 257}))
    cfg = _config(work, train_data=str(work / "big.bin"))
    fails(["train", cfg, "--set", "model.vocab_size=256"], capsys, work,
          r"big\.bin was encoded with a vocabulary of 257 tokens, but model\.vocab_size "
          "is 256; they must match")  # fmt: skip
    (work / "big.bin.json").write_text(json.dumps({**meta, "vocab_size": 256}))
    fails(["train", cfg, "--set", "model.vocab_size=256"], capsys, work,
          r"big\.bin: token id 256 at position 1,048,673 is >= vocab_size=256")  # fmt: skip


@pytest.mark.parametrize(
    "sidecar, match",
    [
        ('{"dtype": "<f4", "num_tokens": 3000}', r"dtype '<f4' is not a little-endian unsigned"),
        ('{"dtype": "<i2", "num_tokens": 3000}', r"dtype '<i2' is not a little-endian unsigned"),
        ('{"dtype": "nope", "num_tokens": 3000}', r"dtype 'nope'"),
        ('{"dtype": "<u2"}', r"missing field 'num_tokens'"),
        ('{"dtype": "<u2", "num_tokens": "3000"}', r"num_tokens must be a non-negative integer"),
        ('{"dtype": "<u2", "num_tokens": 3000', r"train\.bin\.json: malformed JSON"),
        ("[]", r"train\.bin\.json: expected a JSON object"),
        ('{"dtype": "<u2", "num_tokens": 2999}', r"train\.bin: 6000 bytes, but .* says 2999"),
    ],
)
def test_train_malformed_sidecar(work, capsys, sidecar, match):
    (work / "train.bin.json").write_text(sidecar)
    fails(["train", _config(work)], capsys, work, match)


def test_train_output_and_device_checks(work, capsys):
    cfg = _config(work)
    fails(["train", cfg, "--set", f"out_dir={str(work / 'train.bin')!r}"], capsys, work,
          r"out_dir .*train\.bin is also an input")  # fmt: skip
    if not torch.cuda.is_available():
        fails(["train", cfg, "--set", "device='cuda'"], capsys, work,
              r"device 'cuda': this machine has no CUDA GPU")  # fmt: skip
    fails(["train", cfg, "--set", "train_data='nope.bin'"], capsys, work,
          r"token file nope\.bin not found; make it with")  # fmt: skip
    fails(["train", cfg, "--set", "tokenizer='nope'"], capsys, work, r"no tokenizer at nope")
    Tokenizer({i: bytes([i]) for i in range(256)}, [], []).save(work / "tok256")
    fails(["train", cfg, "--set", f"tokenizer={str(work / 'tok256')!r}", "--sweep", "lr=1e-3,2e-3"],
          capsys, work, r"tok256 has 256 tokens, but model\.vocab_size is 257; they must match$")  # fmt: skip


def test_train_resume_with_weights_that_do_not_fit_the_config(work, capsys):
    run = work / "lm"
    config = json.loads((run / "config.json").read_text())
    config["model"]["d_model"] = 32
    (run / "config.json").write_text(json.dumps(config))
    fails(["train", "--resume", run, "--no-progress"], capsys, work,
          r"^cs336-basics: error: .*lm: its checkpoint does not fit the model of its "
          r"config\.json \(size mismatch for \S+: .*\); was it edited\?$")  # fmt: skip


# ---- plot, quickstart, model-info, data ---------------------------------------------------


def test_plot_errors(work, capsys):
    out = ["--out", work / "p.png"]
    fails(["plot", work / "nowhere", *out], capsys, work, r"run directory not found: .*nowhere")
    (work / "not_a_run").mkdir()
    fails(["plot", work / "not_a_run", *out], capsys, work, r"not_a_run has no metrics\.jsonl")
    fails(["plot", work / "lm", "--out", work / "p.txt"], capsys, work,
          r"--out .*p\.txt: the file name must end in \.png, \.pdf")  # fmt: skip
    fails(["plot", work / "lm", "--out", work / "lm" / "metrics.jsonl"], capsys, work,
          r"must end in|is also an input")  # fmt: skip
    with open(work / "lm" / "metrics.jsonl", "a") as f:
        f.write('{"step": 5, "trunc\n')
    fails(["plot", work / "lm", *out], capsys, work, r"metrics\.jsonl:3: malformed JSON")
    # the trainer reads the same file on resume: the same one line, not a traceback
    fails(["train", "--resume", str(work / "lm")], capsys, work, r"metrics\.jsonl:3: malformed")
    (work / "lm" / "metrics.jsonl").write_bytes(b'{"step": 1}\n\xff\n')
    fails(["plot", work / "lm", *out], capsys, work,
          r"metrics\.jsonl: not UTF-8 text \(invalid start byte at byte 12\)$")  # fmt: skip


@pytest.mark.parametrize(
    "suffix, magic", [(".pdf", b"%PDF"), (".svg", b"<?xml"), (".png", b"\x89PNG")]
)
def test_plot_honours_the_suffix(work, capsys, suffix, magic):
    out = work / f"curves{suffix}"
    assert main(["plot", str(work / "lm"), "--out", str(out)]) == 0
    assert out.read_bytes().startswith(magic)


def test_quickstart_checks_everything_before_the_first_stage(tmp_path, capsys):
    fails(["quickstart", "--steps", "0", "--out", tmp_path / "qs"], capsys, tmp_path,
          r"--steps: expected an integer >= 1, got '0'", code=2)  # fmt: skip
    (tmp_path / "file").write_text("x")
    fails(["quickstart", "--out", tmp_path / "file"], capsys, tmp_path, r"--out .*file is a file")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "train.txt").write_text("my corpus")
    fails(["quickstart", "--out", tmp_path / "data"], capsys, tmp_path,
          r"--out .*data holds other files, .* pick a new or empty folder")  # fmt: skip
    (tmp_path / "qs" / "lm").mkdir(parents=True)
    (tmp_path / "qs" / "quickstart.json").write_text("{}")  # a quickstart's folder, but
    fails(["quickstart", "--out", tmp_path / "qs"], capsys, tmp_path,
          r"qs/lm exists and is not a training run")  # fmt: skip
    assert "[1/5]" not in capsys.readouterr().out


def test_model_info_and_data_errors(tmp_path, capsys):
    fails(
        ["model-info", "--config", "gpt2-huge"],
        capsys,
        tmp_path,
        r"--config 'gpt2-huge' is neither",
    )
    fails(["model-info", "--seq-len", "0"], capsys, tmp_path, r"--seq-len: expected an integer", 2)
    (tmp_path / "f").write_text("x")
    fails(["data", "download", "owt", "--out", tmp_path / "f"], capsys, tmp_path, r"f is a file")


def test_debug_shows_the_traceback(tmp_path, capsys):
    argv = ["plot", str(tmp_path / "nowhere"), "--out", str(tmp_path / "p.png")]
    with pytest.raises(FileNotFoundError, match="nowhere"):
        main(["--debug", *argv])
    with pytest.raises(FileNotFoundError, match="nowhere"):
        main([*argv, "--debug"])


def test_debug_after_a_nested_action(tmp_path, capsys):
    argv = ["tokenizer", "train", "--input", str(tmp_path / "nope.txt"), "--vocab-size", "300",
            "--out", str(tmp_path / "tok")]  # fmt: skip
    with pytest.raises(FileNotFoundError, match="nope"):
        main([*argv, "--debug"])
    (tmp_path / "f").write_text("x")
    with pytest.raises(UserError, match="f is a file"):
        main(["data", "download", "owt", "--out", str(tmp_path / "f"), "--debug"])


def test_sigterm_leaves_no_partial_output(work):
    """SIGTERM mid-encode (here: from inside the first chunk) exits 143 like Ctrl-C, with
    no traceback and neither the token file nor its temporary file left behind."""
    import subprocess
    import sys

    script = (
        "import os, signal, sys, time\n"
        "import cs336_basics.corpus_encoding as enc\n"
        "enc._encode_chunk = lambda *a: os.kill(os.getpid(), signal.SIGTERM) or time.sleep(5)\n"
        "from cs336_basics.cli import main\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    out = work / "enc"
    out.mkdir()
    argv = ["tokenizer", "encode", "--tokenizer", work / "tok", "--input", work / "corpus.txt",
            "--out", out / "c.bin", "--workers", "1"]  # fmt: skip
    proc = subprocess.run([sys.executable, "-c", script, *map(str, argv)],
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert proc.returncode == 143, proc.stderr
    assert "Traceback" not in proc.stderr and proc.stderr.strip().endswith("interrupted")
    assert list(out.iterdir()) == []


def test_compile_without_a_cxx_compiler_is_one_line(work, tmp_path):
    """`compile = true` (as in the shipped tinystories config) on a machine without a C++
    compiler: one line that says how to go on, not inductor's traceback."""
    import os
    import subprocess
    import sys

    cfg = _config(work, compile=True)
    env = {**os.environ, "CXX": str(tmp_path / "no-g++"), "TORCHINDUCTOR_CACHE_DIR": str(tmp_path)}
    proc = subprocess.run([sys.executable, "-m", "cs336_basics.cli", "train", str(cfg),
                           "--no-progress"], capture_output=True, text=True, env=env,
                          timeout=300)  # fmt: skip
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert (
        proc.stderr.strip()
        .splitlines()[-1]
        .endswith(
            "compile = true, but torch.compile finds no working C++ compiler (gcc or clang; its "
            "CXX variable); install one or --set compile=false"
        )
    )
