"""What the stage commands share: inputs/--out/executor options, one-line errors, report."""

from __future__ import annotations

import sys
from pathlib import Path

from cs336_data.executor import add_executor_arguments


def add_io_arguments(parser, out_help: str = "output directory for the document shards") -> None:
    parser.add_argument(
        "inputs",
        nargs="+",
        metavar="INPUT",
        help="files, directories or glob patterns (WARC/WET, HTML, JSONL(.gz))",
    )
    parser.add_argument("-o", "--out", required=True, type=Path, help=out_help)  # fmt: skip
    add_executor_arguments(parser)


def expected_errors(fn):
    """Run `fn()`; a ValueError from checking inputs or options is the user's to fix:
    cs336_common.cli prints it as one line (exit 1; --debug shows the traceback)."""
    from cs336_common.cli import one_line
    from cs336_common.errors import InputError, UserError

    try:
        return fn()
    except ValueError as e:
        if isinstance(e, UserError):
            raise
        raise InputError(one_line(e)) from e


# how a stage runs, not what it computes: may change between a run and its resumption
_NOT_OPTIONS = {"inputs", "out", "debug", "prog", "executor", "workers", "partition",
                "time_min", "mem_gb", "cpus_per_task"}  # fmt: skip


def stage_options(args) -> dict:
    return {k: v for k, v in vars(args).items() if k not in _NOT_OPTIONS and k[0] != "_"}


def run_stage(args, stage) -> int:
    """Check inputs and output first, run `stage(inputs, out, cfg)`, print and save the report."""
    from cs336_data.executor import executor_config
    from cs336_data.report import table, write_report
    from cs336_data.stages import check_output_dir, check_same_options, expand_inputs

    def go():
        cfg = executor_config(args)
        inputs = expand_inputs(args.inputs)
        check_output_dir(args.out, inputs)
        check_same_options(args.out, stage_options(args))
        stats = stage(inputs, args.out, cfg)
        write_report(args.out, stats)
        print(table(stats))
        print(f"report: {args.out / 'report.json'}", file=sys.stderr)

    expected_errors(go)
    return 0
