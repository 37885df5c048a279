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
    exact_dedup_stage,
    expand_inputs,
    filter_stage,
    minhash_stage,
    outputs,
    tokenize_stage,
)


def run_pipeline(cfg: PipelineConfig) -> dict:
    start = time.perf_counter()
    out = Path(cfg.output)
    inputs = expand_inputs(cfg.inputs)
    check_output_dir(out, inputs)
    if cfg.tokenizer and cfg.tokenizer != "gpt2" and not Path(cfg.tokenizer).exists():
        raise FileNotFoundError(f"[tokenize] tokenizer {cfg.tokenizer}: no such file or directory")
    ex = cfg.executor
    stats = filter_stage(inputs, out / "1_filtered", cfg.steps, ex, cfg.max_bytes)
    shards = outputs(inputs, out / "1_filtered")
    if cfg.exact_dedup:
        stats |= exact_dedup_stage(shards, out / "2_exact_dedup", ex)
        shards = outputs(shards, out / "2_exact_dedup")
    if cfg.minhash:
        stats |= minhash_stage(shards, out / "3_minhash", ex, dataclasses.asdict(cfg.minhash))
        shards = outputs(shards, out / "3_minhash")
    extra: dict = {"inputs": [str(p) for p in inputs]}
    if cfg.tokenizer:
        extra["tokens"] = tokenize_stage(shards, out / "tokens.bin", ex, cfg.tokenizer)
        extra["token_file"] = str(out / "tokens.bin")
    extra["seconds"] = round(time.perf_counter() - start, 2)
    write_report(out, stats, extra)
    print(table(stats))
    return {"stats": stats, **extra}
