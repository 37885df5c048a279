"""The one command-line pattern every `cs336-<name>` script uses (argparse, stdlib only).

A package's CLI is a table ``{subcommand: (module, help)}``. Each module defines
``add_arguments(parser)`` and ``run(args) -> int | None`` and imports heavy
dependencies (torch, matplotlib) inside ``run``, so ``--help`` stays instant.

Errors: a command raises `cs336_common.errors.UserError` (or `InputError`, `UsageError`)
for a mistake the user can fix; the runner prints it as one line, ``prog: error: ...``,
and exits 1 (`UsageError`: the usage and exit 2). A missing, existing or unwritable
file (FileNotFoundError, FileExistsError, PermissionError, ...) is reported the same
way. Anything else is a bug and shows its traceback; ``--debug`` shows every traceback.

Signals: SIGTERM unwinds like Ctrl-C (`cs336_common.signals`), so a stopped command
removes its temporary files; either prints ``interrupted`` and exits 130 (SIGINT) or
143 (SIGTERM), as the shell reports death by that signal.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import warnings
from collections.abc import Mapping, Sequence

from cs336_common.errors import UsageError, UserError
from cs336_common.signals import terminate_as_interrupt

# OS errors about a path the user named: expected, so one line (the message names the path)
_PATH_ERRORS = (
    FileNotFoundError,
    FileExistsError,
    IsADirectoryError,
    NotADirectoryError,
    PermissionError,
)
_DEBUG_HELP = "show the full traceback of any error (for bug reports)"


def build_parser(prog: str, description: str, commands: Mapping[str, tuple[str, str]]):
    parser = argparse.ArgumentParser(
        prog=prog,
        description=description,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--debug", action="store_true", help=_DEBUG_HELP)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    parser.commands = {}  # name -> its parser (not in the parsed args: ranks pickle those)
    for name, (module_name, help_text) in commands.items():
        module = importlib.import_module(module_name)
        p = sub.add_parser(
            name,
            help=help_text,
            description=(module.__doc__ or help_text).strip(),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        module.add_arguments(p)
        _add_debug(p)
        p.set_defaults(_run=module.run, prog=prog)
        parser.commands[name] = p
    return parser


def _add_debug(parser) -> None:
    """`--debug` also after the command and after a nested action (`keys create x --debug`);
    SUPPRESS keeps a value given before it."""
    parser.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=_DEBUG_HELP)
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for nested in action.choices.values():
                _add_debug(nested)


def run_cli(
    prog: str,
    description: str,
    commands: Mapping[str, tuple[str, str]],
    argv: Sequence[str] | None = None,
) -> int:
    parser = build_parser(prog, description, commands)
    args = parser.parse_args(argv)
    try:
        with warnings.catch_warnings(), terminate_as_interrupt():
            if not args.debug:  # a warning is one line too, without the source line
                warnings.showwarning = lambda message, *_, **__: print(
                    f"{prog}: warning: {message}", file=sys.stderr
                )
            return int(args._run(args) or 0)
    except KeyboardInterrupt as e:  # `Interrupted` (SIGTERM, a training loop) says its code
        print("interrupted", file=sys.stderr)
        return getattr(e, "exit_code", 130)
    except (UserError, *_PATH_ERRORS) as e:
        if args.debug:
            raise
        if isinstance(e, UsageError):
            parser.commands[args.command].error(one_line(e))  # prints the usage; exits 2
        print(f"{prog}: error: {one_line(e)}", file=sys.stderr)
        return 1


def one_line(error: BaseException) -> str:
    """The error's message on one line; an OS error as ``path: reason``."""
    if isinstance(error, OSError) and error.filename is not None and error.strerror:
        paths = " -> ".join(str(p) for p in (error.filename, error.filename2) if p is not None)
        return f"{paths}: {error.strerror}"
    return " ".join(str(error).split()) or type(error).__name__


# ---- argument types: a bad value is a usage error that names the flag (exit 2) ----------


def positive_int(text: str) -> int:
    return _number(text, int, lambda v: v >= 1, "an integer >= 1")


def non_negative_int(text: str) -> int:
    return _number(text, int, lambda v: v >= 0, "an integer >= 0")


def positive_float(text: str) -> float:
    return _number(text, float, lambda v: v > 0, "a finite number > 0")


def non_negative_float(text: str) -> float:
    return _number(text, float, lambda v: v >= 0, "a finite number >= 0")


def probability(text: str) -> float:
    """A number in (0, 1], e.g. a nucleus mass."""
    return _number(text, float, lambda v: 0 < v <= 1, "a number in (0, 1]")


def fraction(text: str) -> float:
    """A number in [0, 1], e.g. a classifier's score threshold."""
    return _number(text, float, lambda v: 0 <= v <= 1, "a number in [0, 1]")


def _number(text: str, kind: type, ok, expected: str):
    try:
        value = kind(text)
    except ValueError:
        value = None
    if value is None or value != value or value in (float("inf"), float("-inf")) or not ok(value):
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
    return value
