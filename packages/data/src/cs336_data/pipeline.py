"""The whole pipeline: WARC/WET -> extract -> language -> Gopher -> harmful -> quality ->
PII masking -> exact line dedup -> MinHash dedup -> tokens, with a report of every stage.

Layout of the output directory: 1_filtered/, 2_exact_dedup/, 3_minhash/ (document shards
with their stats), tokens.bin (+ .json sidecar), report.json, removed_samples.jsonl."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

from cs336_data.config import PipelineConfig
from cs336_data.report import table, write_report
from cs336_data.stages import (
    check_output_dir,
    check_same_options,
    exact_dedup_stage,
    expand_inputs,
    filter_stage,
    lines_work,
    minhash_stage,
    minhash_work,
    outputs,
    tokenize_stage,
    tokens_work,
)


def _gather(kind: str, work, where: Path, params: dict | None):
    """Output shard -> the collector spec that writes the next stage's file for it."""
    return lambda shard: (kind, str(work(where, shard)), params)


def run_pipeline(cfg: PipelineConfig) -> dict:
    start = time.perf_counter()
    out = Path(cfg.output)
    inputs = expand_inputs(cfg.inputs)
    check_output_dir(out, inputs, flag="output")
    skip = ("inputs", "output", "executor")  # a resumed run may add inputs or workers
    options = {k: v for k, v in dataclasses.asdict(cfg).items() if k not in skip}
    check_same_options(out, options, flag="output")
    if cfg.tokenizer and cfg.tokenizer != "gpt2" and not Path(cfg.tokenizer).exists():
        raise FileNotFoundError(f"[tokenize] tokenizer {cfg.tokenizer}: no such file or directory")
    ex = cfg.executor
    dirs = [out / "1_filtered", out / "2_exact_dedup", out / "3_minhash"]
    tokens = out / "tokens.bin"
    mh = dataclasses.asdict(cfg.minhash) if cfg.minhash else None
    # Each stage gathers, while writing, what the next one's per-shard pass would compute.
    lines = _gather("lines", lines_work, dirs[1], {}) if cfg.exact_dedup else None
    sigs = _gather("minhash", minhash_work, dirs[2], mh) if mh else None
    tok = {"tokenizer": cfg.tokenizer}
    toks = _gather("tokens", tokens_work, tokens, tok) if cfg.tokenizer else None
    after_filter = lines or sigs or toks
    stats = filter_stage(inputs, dirs[0], cfg.steps, ex, cfg.max_bytes, after_filter)
    shards = outputs(inputs, dirs[0])
    if cfg.exact_dedup:
        stats |= exact_dedup_stage(shards, dirs[1], ex, sigs or toks)
        shards = outputs(shards, dirs[1])
    if mh:
        stats |= minhash_stage(shards, dirs[2], ex, mh, toks)
        shards = outputs(shards, dirs[2])
    extra: dict = {"inputs": [str(p) for p in inputs]}
    if cfg.tokenizer:
        extra["tokens"] = tokenize_stage(shards, tokens, ex, cfg.tokenizer)
        extra["token_file"] = str(tokens)
    extra["seconds"] = round(time.perf_counter() - start, 2)
    write_report(out, stats, extra)
    print(table(stats))
    return {"stats": stats, **extra}
