"""Command-line flags from a config dataclass: every field becomes ``--field-name`` with
its default and type (bools get ``--x/--no-x``), so the CLI and the config never drift.

A number out of range is a usage error naming the flag before anything loads: counts
are >= 1 (``*_every`` and those that default to 0: >= 0, where 0 means never/none),
rates and coefficients >= 0; ``precision`` is one of `PRECISIONS`."""

from __future__ import annotations

import argparse
import dataclasses
import typing

from cs336_common.cli import non_negative_float, non_negative_int, positive_int

PRECISIONS = ("fp32", "bf16")  # what the training loop accepts


def add_config_flags(parser: argparse.ArgumentParser, cls, prefix: str = "") -> None:
    group = parser.add_argument_group(f"{cls.__name__} (training settings)")
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        flag = f"--{prefix}{f.name.replace('_', '-')}"
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        kind = hints[f.name]
        if kind is bool:
            group.add_argument(flag, action=argparse.BooleanOptionalAction, default=default,
                               help=f"default {default}")  # fmt: skip
            continue
        base = next((t for t in typing.get_args(kind) if t is not type(None)), kind)
        if f.name == "precision":
            group.add_argument(flag, choices=PRECISIONS, default=default,
                               help=f"default {default}")  # fmt: skip
            continue
        group.add_argument(flag, type=_checked(f.name, base, default), default=default,
                           metavar=base.__name__.upper(), help=f"default {default}")  # fmt: skip


def _checked(name: str, base: type, default):
    """The argparse type of a number field: its range, by what the field counts."""
    if base is float:
        return non_negative_float
    if base is not int or name == "seed":
        return base
    return non_negative_int if name.endswith("_every") or default == 0 else positive_int


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
