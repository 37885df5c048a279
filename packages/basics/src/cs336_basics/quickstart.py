"""The quickstart: all of assignment 1 end to end on English text shipped with the package.

shipped corpus -> train/validation text -> BPE tokenizer -> token files -> small LM
(`train`) -> loss-curve PNG, validation loss against the unigram entropy, samples.

The corpus is the BSD `fortune` database (see ``corpus/NOTICE.txt``): ~15k short
documents, shuffled, so the last ``val_fraction`` of them is an i.i.d. validation set.
The unigram entropy of the validation tokens is the loss of the best model that ignores
context; a validation loss well below it shows the LM learned to use its context.
"""

from __future__ import annotations

import json
import lzma
import math
import shutil
import time
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np

from cs336_basics.bpe import train_bpe
from cs336_basics.corpus_encoding import encode_file
from cs336_basics.generation import generate
from cs336_basics.plot import plot_runs
from cs336_basics.train_config import TrainConfig, load_train_config
from cs336_basics.trainer import load_trained_model, train
from cs336_common.checks import check_output
from cs336_common.device import resolve_device
from cs336_common.errors import InputError, UserError
from cs336_common.io import write_text_atomic
from cs336_common.tokenizer import Tokenizer
from cs336_common.train.token_file import open_token_file

EOS = "<|endoftext|>"
# written first into --out: a folder holding it is a quickstart's, whose outputs a new run
# may replace; any other non-empty folder is refused
_MARKER = "quickstart.json"


@dataclass
class QuickstartConfig:
    out_dir: str = "runs/quickstart"
    corpus_chars: int | None = None  # use only the first N characters (whole documents)
    val_fraction: float = 0.1  # the last documents, for validation
    # ``key=value`` overrides of the shipped training config ``quickstart``
    # (configs/quickstart.toml), e.g. "max_steps=100"; its model.vocab_size is the BPE's
    train: list[str] = field(default_factory=list)
    device: str = "auto"
    seed: int = 0
    prompts: list[str] = field(default_factory=lambda: ["", "Love is", "The computer", "Q:"])
    max_new_tokens: int = 48


@dataclass
class QuickstartResult:
    out_dir: Path
    val_loss: float  # nats/token, after the last step
    unigram_entropy: float  # nats/token of the validation tokens
    samples: list[str]  # prompt + continuation, one per prompt
    wall_time_s: float


def run_quickstart(config: QuickstartConfig, *, progress: bool = True) -> QuickstartResult:
    """Run every stage into ``config.out_dir`` (its earlier quickstart outputs are replaced)."""
    start = time.perf_counter()
    out, train_config = _check(config)
    out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out / _MARKER, json.dumps(asdict(config), indent=2) + "\n")
    say = print if progress else (lambda *a, **k: None)

    say(f"[1/5] corpus: the fortune database, shipped ({_stage(start)})")
    train_txt, val_txt = _split_corpus(out, config.corpus_chars, config.val_fraction)

    vocab_size = train_config.model.vocab_size
    say(f"[2/5] BPE tokenizer, vocab {vocab_size}, trained on {train_txt} ({_stage(start)})")
    vocab, merges = train_bpe(train_txt, vocab_size, [EOS], progress=progress)
    tokenizer = Tokenizer(vocab, merges, special_tokens=[EOS])
    tokenizer.save(out / "tokenizer")

    say(f"[3/5] tokenizing ({_stage(start)})")
    sizes = {}
    for name, txt in (("train", train_txt), ("val", val_txt)):
        sizes[name] = encode_file(tokenizer, txt, out / f"{name}.bin", progress=progress)
    unigram = unigram_entropy(open_token_file(out / "val.bin"))
    say(f"      {sizes['train']:,} train and {sizes['val']:,} validation tokens")

    say(f"[4/5] training the LM on {resolve_device(config.device)} ({_stage(start)})")
    _remove_previous_run(Path(train_config.out_dir))
    result = train(train_config, progress=progress)
    plot = plot_runs([result.run_dir], out / "loss.png", title="quickstart: fortune database")

    say(f"[5/5] sampling ({_stage(start)})")
    model = load_trained_model(result.run_dir, device=resolve_device(config.device))
    continuations = generate(
        model, tokenizer, config.prompts, config.max_new_tokens, top_p=0.9, seed=config.seed
    )
    samples = [p + c for p, c in zip(config.prompts, continuations, strict=True)]

    say(f"\nloss curves: {plot}")
    say(f"validation loss  {result.val_loss:.3f} nats/token")
    say(f"unigram entropy  {unigram:.3f} nats/token of the validation tokens")
    for s in samples:
        say("-" * 60 + "\n" + s)
    say("-" * 60 + f"\ndone in {_stage(start)}")
    return QuickstartResult(out, result.val_loss, unigram, samples, time.perf_counter() - start)


def unigram_entropy(ids: np.ndarray) -> float:
    """Entropy (nats) of the token frequencies in ``ids``: ``-Σ p log p``."""
    counts = np.bincount(np.asarray(ids, dtype=np.int64))
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log(p)).sum())


def _split_corpus(out: Path, corpus_chars: int | None, val_fraction: float) -> tuple[Path, Path]:
    """Decompress the shipped corpus; write whole documents (each ending in EOS) to
    ``train.txt`` and the last ``val_fraction`` of them to ``val.txt``."""
    packed = resources.files("cs336_basics") / "corpus" / "fortunes.txt.xz"
    docs = lzma.decompress(packed.read_bytes()).decode("utf-8").split(EOS)[:-1]
    if corpus_chars is not None:
        lengths = np.cumsum([len(d) + len(EOS) for d in docs])
        docs = docs[: max(2, int(np.searchsorted(lengths, corpus_chars, side="right")))]
    num_val = max(1, math.ceil(len(docs) * val_fraction))
    paths = out / "train.txt", out / "val.txt"
    for path, part in zip(paths, (docs[:-num_val], docs[-num_val:]), strict=True):
        path.write_text("".join(d + EOS for d in part), encoding="utf-8")
    return paths


def _check(config: QuickstartConfig) -> tuple[Path, TrainConfig]:
    """Every setting and the output folder, before the first stage: a mistake is a
    `UserError` now, not after minutes of tokenizing. Returns the output folder and the
    training config."""
    out = check_output(config.out_dir, directory=True)
    if out.is_dir() and any(out.iterdir()) and not (out / _MARKER).is_file():
        raise UserError(
            f"--out {out} holds other files, and the quickstart writes train.txt, val.txt, "
            "tokenizer/, *.bin, lm/ there: pick a new or empty folder"
        )
    if not 0 < config.val_fraction < 1:
        raise InputError(f"val_fraction must lie in (0, 1), got {config.val_fraction}")
    try:
        train_config = _train_config(config, out)
    except ValueError as e:
        raise InputError(f"quickstart: {e}") from None
    _remove_previous_run(Path(train_config.out_dir), dry_run=True)
    resolve_device(config.device)  # a device this machine lacks fails here
    return out, train_config


def _remove_previous_run(run_dir: Path, dry_run: bool = False) -> None:
    """Replace the previous quickstart's run, and nothing else."""
    if not run_dir.exists():
        return
    if not (run_dir / "config.json").is_file():
        raise FileExistsError(f"{run_dir} exists and is not a training run; pick another --out")
    if not dry_run:
        shutil.rmtree(run_dir)


def _train_config(config: QuickstartConfig, out: Path) -> TrainConfig:
    """The shipped ``quickstart`` config, read as `cs336-basics train` reads it, with
    this quickstart's paths, device and seed, then ``config.train``."""
    paths = dict(
        train_data=out / "train.bin",
        val_data=out / "val.bin",
        tokenizer=out / "tokenizer",
        out_dir=out / "lm",
    )
    overrides = [f"{k}={json.dumps(str(v))}" for k, v in paths.items()]
    overrides += [f"device={json.dumps(config.device)}", f"seed={config.seed}", *config.train]
    return load_train_config("quickstart", overrides)


def _stage(start: float) -> str:
    return f"{time.perf_counter() - start:.0f} s"
