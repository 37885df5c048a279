"""The one command-line pattern every `cs336-<name>` script uses (argparse, stdlib only).

A package's CLI is a table ``{subcommand: (module, help)}``. Each module defines
``add_arguments(parser)`` and ``run(args) -> int | None`` and imports heavy
dependencies (torch, matplotlib) inside ``run``, so ``--help`` stays instant.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Mapping, Sequence


def build_parser(prog: str, description: str, commands: Mapping[str, tuple[str, str]]):
    parser = argparse.ArgumentParser(
        prog=prog,
        description=description,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (module_name, help_text) in commands.items():
        module = importlib.import_module(module_name)
        p = sub.add_parser(
            name,
            help=help_text,
            description=(module.__doc__ or help_text).strip(),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        module.add_arguments(p)
        p.set_defaults(_run=module.run, prog=prog)
    return parser


def run_cli(
    prog: str,
    description: str,
    commands: Mapping[str, tuple[str, str]],
    argv: Sequence[str] | None = None,
) -> int:
    args = build_parser(prog, description, commands).parse_args(argv)
    try:
        return int(args._run(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
