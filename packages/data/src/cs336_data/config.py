"""The pipeline's configuration: a TOML file read into dataclasses.

    inputs = ["crawl/*.warc.gz"]   # files, directories or globs, relative to this file
    output = "out"
    [executor]      kind = "local", workers = 2 (slurm: partition, time_min, mem_gb)
    [extract]       max_bytes = 10000000
    [langid]        languages = ["en"], min_score = 0.65, model = "lid.176.bin"
    [gopher]
    [harmful]       nsfw_threshold = 0.5, toxic_threshold = 0.5, nsfw_model, toxic_model
    [quality]       min_wiki = 0.5, model = "my_quality.bin"
    [mask]
    [exact_dedup]
    [minhash]       num_hashes = 128, num_bands = 16, ngrams = 5, threshold = 0.8
    [tokenize]      tokenizer = "gpt2" (or a directory with tokenizer.json)

Every stage is on unless its table says `enabled = false`."""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from cs336_data.executor import ExecutorConfig

STEP_ORDER = ("langid", "gopher", "harmful", "quality", "mask")
MODEL_KEYS = ("model", "nsfw_model", "toxic_model")


@dataclass
class MinHashConfig:
    num_hashes: int = 128
    num_bands: int = 16
    ngrams: int = 5
    threshold: float = 0.8
    seed: int = 0

    def check(self) -> None:
        if self.num_hashes < 1 or self.num_bands < 1 or self.num_hashes % self.num_bands:
            raise ValueError(
                f"[minhash] num_hashes ({self.num_hashes}) must be a positive multiple of "
                f"num_bands ({self.num_bands})"
            )
        if self.ngrams < 1 or not 0 < self.threshold <= 1:
            raise ValueError(f"[minhash] need ngrams >= 1 and 0 < threshold <= 1, got "
                             f"{self.ngrams}, {self.threshold}")  # fmt: skip


@dataclass
class PipelineConfig:
    inputs: list[str]
    output: str
    executor: ExecutorConfig = field(default_factory=ExecutorConfig)
    max_bytes: int = 10_000_000
    steps: list[tuple[str, dict]] = field(default_factory=list)
    exact_dedup: bool = True
    minhash: MinHashConfig | None = field(default_factory=MinHashConfig)
    tokenizer: str | None = "gpt2"


def _table(raw: dict, name: str) -> tuple[bool, dict]:
    t = dict(raw.pop(name, {}))
    if not isinstance(t, dict):
        raise ValueError(f"[{name}] must be a table")
    return bool(t.pop("enabled", True)), t


def _build(cls, opts: dict, name: str):
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(opts) - known)
    if unknown:
        raise ValueError(
            f"[{name}] unknown option {unknown[0]!r} (known: {', '.join(sorted(known))})"
        )
    return cls(**opts)


def load_config(path: str | Path) -> PipelineConfig:
    from cs336_data.steps import STEPS

    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FileNotFoundError(f"config {path}: no such file") from None
    except tomllib.TOMLDecodeError as e:
        raise ValueError(f"config {path}: {e}") from None
    base = path.parent

    def rel(p: str) -> str:
        return str(base / p) if not Path(p).is_absolute() else p

    for key in ("inputs", "output"):
        if key not in raw:
            raise ValueError(f"config {path}: missing {key!r}")
    inputs = raw.pop("inputs")
    inputs = [inputs] if isinstance(inputs, str) else inputs
    if not isinstance(inputs, list) or not inputs or not all(isinstance(p, str) for p in inputs):
        raise ValueError(f"config {path}: 'inputs' must name at least one file, folder or glob")
    cfg = PipelineConfig([rel(p) for p in inputs], rel(raw.pop("output")))
    cfg.executor = _build(ExecutorConfig, dict(raw.pop("executor", {})), "executor")
    cfg.executor.check()
    cfg.max_bytes = int(_table(raw, "extract")[1].get("max_bytes", cfg.max_bytes))
    for name in STEP_ORDER:
        on, opts = _table(raw, name)
        for key in MODEL_KEYS:
            if opts.get(key):
                opts[key] = rel(opts[key])
        if on:
            _build(STEPS[name], opts, name)  # checks the options now, not in a worker
            cfg.steps.append((name, opts))
    cfg.exact_dedup = _table(raw, "exact_dedup")[0]
    on, opts = _table(raw, "minhash")
    cfg.minhash = _build(MinHashConfig, opts, "minhash") if on else None
    if cfg.minhash:
        cfg.minhash.check()
    on, opts = _table(raw, "tokenize")
    cfg.tokenizer = opts.get("tokenizer", "gpt2") if on else None
    if raw:
        raise ValueError(f"config {path}: unknown key or table {sorted(raw)[0]!r}")
    return cfg
