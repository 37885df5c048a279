"""The shared CLI runner: user errors as one line (exit 1, usage 2), OS errors about a
path as `path: reason`, warnings as one line, bugs and --debug with their traceback."""

import sys
import types
import warnings
from pathlib import Path

import pytest

from cs336_common.cli import fraction, non_negative_float, positive_int, probability, run_cli
from cs336_common.errors import InputError, UsageError, UserError


def _cli(monkeypatch, action):
    """A one-command CLI (`prog do`) whose command calls `action()`."""
    module = types.ModuleType("fake_command", "Does a thing.")
    module.add_arguments = lambda p: p.add_argument("--n", type=positive_int, default=1)
    module.run = lambda args: action()
    monkeypatch.setitem(sys.modules, "fake_command", module)  # what the runner imports
    return lambda *argv: run_cli("prog", "A test CLI.", {"do": ("fake_command", "do it")}, argv)


def _raise(error):
    def action():
        raise error

    return action


@pytest.mark.parametrize(
    "action, line",
    [
        (_raise(UserError("settings.toml: lr must be > 0")), "settings.toml: lr must be > 0"),
        (_raise(InputError("a\n  b")), "a b"),
        (
            lambda: Path("/nonexistent/x.txt").read_text(),
            "/nonexistent/x.txt: No such file or directory",
        ),
        (_raise(FileExistsError("out/ holds a run")), "out/ holds a run"),
    ],
)
def test_expected_errors_are_one_line_exit_1(monkeypatch, capsys, action, line):
    cli = _cli(monkeypatch, action)
    assert cli("do") == 1
    assert capsys.readouterr().err == f"prog: error: {line}\n"
    with pytest.raises((UserError, OSError)):
        cli("--debug", "do")
    with pytest.raises((UserError, OSError)):
        cli("do", "--debug")


def test_debug_is_taken_after_a_nested_action(monkeypatch):
    module = types.ModuleType("fake_nested", "Has actions.")

    def add_arguments(p):
        sub = p.add_subparsers(dest="action", required=True)
        sub.add_parser("create").add_argument("name")

    module.add_arguments = add_arguments
    module.run = lambda args: (_ for _ in ()).throw(UserError(f"cannot create {args.name}"))
    monkeypatch.setitem(sys.modules, "fake_nested", module)
    commands = {"keys": ("fake_nested", "keys")}
    assert run_cli("prog", "A test CLI.", commands, ["keys", "create", "x"]) == 1
    for argv in (["--debug", "keys", "create", "x"], ["keys", "create", "x", "--debug"]):
        with pytest.raises(UserError, match="cannot create x"):  # --debug: the traceback
            run_cli("prog", "A test CLI.", commands, argv)


def test_usage_errors_exit_2_with_the_usage(monkeypatch, capsys):
    cli = _cli(monkeypatch, _raise(UsageError("give A or B")))
    with pytest.raises(SystemExit) as e:
        cli("do")
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: prog do") and err.endswith("prog do: error: give A or B\n")
    with pytest.raises(SystemExit) as e:
        cli("do", "--n", "0")
    assert e.value.code == 2
    assert "argument --n: expected an integer >= 1, got '0'" in capsys.readouterr().err


def test_bugs_keep_their_traceback(monkeypatch):
    cli = _cli(monkeypatch, _raise(ValueError("a bug")))
    with pytest.raises(ValueError, match="a bug"):
        cli("do")


def test_warnings_are_one_line(monkeypatch, capsys):
    shown = warnings.showwarning
    cli = _cli(monkeypatch, lambda: warnings.warn("few merges", stacklevel=1))
    assert cli("do") == 0
    assert capsys.readouterr().err == "prog: warning: few merges\n"
    assert warnings.showwarning is shown  # restored after the command


def test_sigterm_unwinds_like_ctrl_c_and_exits_143(monkeypatch, capsys, tmp_path):
    """SIGTERM mid-command raises in the command (its `finally` runs), prints one line
    and exits 143; the previous handler is back afterwards."""
    import signal

    from cs336_common.io import atomic_path

    def interrupted_write():
        with atomic_path(tmp_path / "out.txt") as tmp:
            tmp.write_text("half")
            signal.raise_signal(signal.SIGTERM)

    def not_handled(signum, frame):  # rather than SIGTERM's default: end pytest
        pytest.fail("SIGTERM reached the handler outside the runner")

    before = signal.signal(signal.SIGTERM, not_handled)
    try:
        assert _cli(monkeypatch, interrupted_write)("do") == 128 + signal.SIGTERM
        assert signal.getsignal(signal.SIGTERM) is not_handled
    finally:
        signal.signal(signal.SIGTERM, before)
    assert capsys.readouterr().err == "interrupted\n"
    assert list(tmp_path.iterdir()) == []  # neither out.txt nor its temporary file
    assert _cli(monkeypatch, _raise(KeyboardInterrupt))("do") == 130  # Ctrl-C


def test_help_prints_the_commands_and_debug(monkeypatch, capsys):
    cli = _cli(monkeypatch, lambda: 0)
    with pytest.raises(SystemExit) as e:
        cli("--help")
    out = capsys.readouterr().out
    assert e.value.code == 0
    assert "A test CLI." in out and "do it" in out and "--debug" in out
    with pytest.raises(SystemExit):
        cli("do", "--help")
    assert "Does a thing." in capsys.readouterr().out


@pytest.mark.parametrize(
    "parse, good, bad",
    [
        (positive_int, {"3": 3}, ["0", "-1", "1.5", "x"]),
        (non_negative_float, {"0": 0.0, "2.5": 2.5}, ["-0.1", "nan", "inf", "x"]),
        (probability, {"1": 1.0, "0.9": 0.9}, ["0", "1.01", "nan"]),
        (fraction, {"0": 0.0, "1": 1.0, "0.5": 0.5}, ["-0.1", "1.01", "nan", "x"]),
    ],
)
def test_number_types(parse, good, bad):
    import argparse

    for text, value in good.items():
        assert parse(text) == value
    for text in bad:
        with pytest.raises(argparse.ArgumentTypeError, match=repr(text)):
            parse(text)
