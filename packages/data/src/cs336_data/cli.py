"""`cs336-data`: from raw web crawl (WARC/WET) to clean, deduplicated, tokenized training
data. Each stage is a command over document shards (gzip JSONL); `pipeline` runs them all.

quick start:
  cs336-data pipeline --example-config > pipeline.toml   # edit inputs/output
  cs336-data pipeline --config pipeline.toml"""

from __future__ import annotations

from collections.abc import Sequence

from cs336_common.cli import run_cli

_C = "cs336_data.commands."
COMMANDS = {
    "pipeline": (_C + "pipeline", "run every stage from a TOML config, resumably"),
    "extract": (_C + "extract", "WARC/WET/HTML -> text documents (JSONL shards)"),
    "langid": (_C + "langid", "identify languages (fastText lid.176), keep the wanted ones"),
    "filter": (_C + "filter", "apply the Gopher quality rules"),
    "classify": (_C + "classify", "NSFW / toxic / quality classifiers; drop what fails"),
    "mask": (_C + "mask", "mask e-mail addresses, phone numbers and IP addresses"),
    "dedup": (_C + "dedup", "exact line or MinHash near-duplicate removal across all shards"),
    "tokenize": (_C + "tokenize", "documents -> one token file (GPT-2 vocabulary by default)"),
    "quality": (_C + "quality", "train a quality classifier from labelled text"),
    "models": (_C + "models", "download the Dolma Jigsaw classifiers (needs internet)"),
    "about": ("cs336_common.about", "version, summary and status of this package"),
}


def main(argv: Sequence[str] | None = None) -> int:
    return run_cli("cs336-data", __doc__, COMMANDS, argv)


if __name__ == "__main__":
    raise SystemExit(main())
