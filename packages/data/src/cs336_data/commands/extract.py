"""Extract the text of WARC/WET records (or HTML files) into JSONL document shards.

One output shard per input file, with URL, WARC record id and date in each document's
metadata. Non-HTML responses, error statuses, empty and huge pages and corrupt records are
counted in the report, never fatal.

example: cs336-data extract crawl/*.warc.gz -o docs/"""

from cs336_common.cli import positive_int
from cs336_data.commands._common import add_io_arguments, run_stage


def add_arguments(parser) -> None:
    add_io_arguments(parser)
    parser.add_argument("--max-bytes", type=positive_int, default=10_000_000,
                        help="skip records larger than this (10 MB)")  # fmt: skip


def run(args) -> int:
    from cs336_data.stages import filter_stage

    return run_stage(args, lambda i, o, c: filter_stage(i, o, [], c, args.max_bytes))
