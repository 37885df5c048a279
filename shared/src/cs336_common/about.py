"""Print the package's version, summary and where to read more."""

from importlib import metadata


def add_arguments(parser):
    del parser


def run(args):
    meta = metadata.metadata(args.prog)
    print(f"{args.prog} {meta['Version']}: {meta['Summary']}")
    print("See the package README for status, commands and measured results.")
