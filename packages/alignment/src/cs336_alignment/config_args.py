"""Command-line flags from a config dataclass: every field becomes ``--field-name`` with
its default and type (bools get ``--x/--no-x``), so the CLI and the config never drift."""

from __future__ import annotations

import argparse
import dataclasses
import typing


def add_config_flags(parser: argparse.ArgumentParser, cls, prefix: str = "") -> None:
    group = parser.add_argument_group(f"{cls.__name__} (training settings)")
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        flag = f"--{prefix}{f.name.replace('_', '-')}"
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        kind = hints[f.name]
        if kind is bool:
            group.add_argument(flag, action=argparse.BooleanOptionalAction, default=default)
            continue
        base = next((t for t in typing.get_args(kind) if t is not type(None)), kind)
        group.add_argument(flag, type=base, default=default, metavar=base.__name__.upper(),
                           help=f"default {default}")  # fmt: skip


def config_from_args(args: argparse.Namespace, cls, prefix: str = ""):
    """The dataclass from parsed flags; a value it rejects is a usage error."""
    from cs336_common.errors import UsageError

    values = {
        f.name: getattr(args, (prefix + f.name).replace("-", "_")) for f in dataclasses.fields(cls)
    }
    try:
        return cls(**values)
    except ValueError as e:
        raise UsageError(str(e)) from None
