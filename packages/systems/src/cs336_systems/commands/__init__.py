"""Subcommand modules of `cs336-systems` (see `cli.COMMANDS`)."""
