"""Mask e-mail addresses, phone numbers and IPv4 addresses in every document.

Matches become |||EMAIL_ADDRESS|||, |||PHONE_NUMBER|||, |||IP_ADDRESS|||; the counts go
to the metadata (`pii_masked`). No document is removed.

example: cs336-data mask docs/ -o masked/"""

from cs336_data.commands._common import add_io_arguments, run_stage


def add_arguments(parser) -> None:
    add_io_arguments(parser)


def run(args) -> int:
    from cs336_data.stages import filter_stage

    return run_stage(args, lambda i, o, c: filter_stage(i, o, [("mask", {})], c))
