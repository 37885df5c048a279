"""The `cs336-basics` subcommands, one module each (see `cs336_basics.cli`)."""

import argparse


def add_debug_flag(parser: argparse.ArgumentParser) -> None:
    """``--debug`` after a nested action too (``tokenizer train ... --debug``), as the
    runner allows after every command; SUPPRESS keeps a value given earlier."""
    parser.add_argument(
        "--debug",
        action="store_true",
        default=argparse.SUPPRESS,
        help="show the full traceback of any error (for bug reports)",
    )
