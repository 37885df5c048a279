import json

import numpy as np
import pytest

from cs336_basics.cli import main
from cs336_basics.quickstart import QuickstartConfig, run_quickstart, unigram_entropy
from cs336_common.errors import UserError


def _tiny(out_dir, **kw) -> QuickstartConfig:
    train = ["model.vocab_size=320", "model.context_length=32", "model.d_model=32"]
    train += ["model.num_layers=1", "model.num_heads=2", "batch_size=16", "max_steps=60"]
    train += ["lr=1e-2", "eval_every=30", "warmup_steps=3"]
    return QuickstartConfig(
        out_dir=str(out_dir),
        corpus_chars=60_000,
        train=train,
        device="cpu",
        prompts=["", "Love is"],
        max_new_tokens=8,
        **kw,
    )


@pytest.fixture(scope="module")
def quickstart_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("qs")
    return out, run_quickstart(_tiny(out), progress=False)


def test_shrunk_quickstart_runs_end_to_end(quickstart_run):
    out, result = quickstart_run
    for name in ("tokenizer", "train.bin", "val.bin", "loss.png", "lm/config.json"):
        assert (out / name).exists(), name
    metrics = [json.loads(line) for line in (out / "lm" / "metrics.jsonl").open()]
    assert metrics[-1]["step"] == 60 and metrics[-1]["val_loss"] == result.val_loss
    print(f"val loss {result.val_loss:.3f}, unigram entropy {result.unigram_entropy:.3f}")
    # even this tiny LM uses its context: below the best context-free loss
    assert result.val_loss < result.unigram_entropy
    assert len(result.samples) == 2 and result.samples[1].startswith("Love is")


def test_validation_is_held_out_whole_documents(quickstart_run):
    out, _ = quickstart_run
    train, val = ((out / f).read_text(encoding="utf-8") for f in ("train.txt", "val.txt"))
    assert train.endswith("<|endoftext|>") and val.endswith("<|endoftext|>")
    n_train, n_val = train.count("<|endoftext|>"), val.count("<|endoftext|>")
    assert n_val == pytest.approx((n_train + n_val) / 10, abs=1)
    assert len(train) + len(val) <= 60_000


def test_quickstart_never_deletes_foreign_files(tmp_path):
    (tmp_path / "lm").mkdir()
    with pytest.raises(UserError, match="holds other files"):
        run_quickstart(_tiny(tmp_path), progress=False)
    (tmp_path / "quickstart.json").write_text("{}")  # an earlier quickstart's folder
    with pytest.raises(FileExistsError, match="not a training run"):
        run_quickstart(_tiny(tmp_path), progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lm", "quickstart.json"]


def test_unigram_entropy_against_float64_formula():
    rng = np.random.default_rng(0)
    ids = rng.integers(0, 7, size=5000).astype(np.uint16)
    p = np.array([(ids == i).mean() for i in range(7)], dtype=np.float64)
    assert unigram_entropy(ids) == pytest.approx(-(p * np.log(p)).sum(), rel=1e-12)
    assert unigram_entropy(np.zeros(10, dtype=np.uint16)) == 0.0


def test_generate_cli_samples_from_the_quickstart_run(quickstart_run, capsys):
    out, _ = quickstart_run
    args = ["generate", "--run", str(out / "lm")]  # the run knows its tokenizer
    args += ["--prompt", "Love is", "--prompt", "Q:", "--max-new-tokens", "5", "--seed", "0"]
    assert main([*args, "--temperature", "0"]) == 0
    printed = capsys.readouterr().out
    assert printed.count("Love is") == 1 and printed.count("Q:") == 1
    assert main([*args, "--temperature", "0"]) == 0
    assert capsys.readouterr().out == printed  # greedy is deterministic


def test_generate_needs_a_tokenizer_when_the_run_has_none(quickstart_run, tmp_path, capsys):
    import shutil

    out, _ = quickstart_run
    bare = tmp_path / "lm"
    shutil.copytree(out / "lm", bare, ignore=shutil.ignore_patterns("tokenizer"))
    with pytest.raises(SystemExit) as exit_info:
        main(["generate", "--run", str(bare), "--prompt", "Q:"])
    assert exit_info.value.code == 2
    assert "keeps no tokenizer" in capsys.readouterr().err
    args = ["generate", "--run", str(bare), "--tokenizer", str(out / "tokenizer")]
    assert main([*args, "--prompt", "Q:", "--max-new-tokens", "2"]) == 0
