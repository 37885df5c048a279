"""What `cs336-basics --help` and each command's --help print."""

import re

import pytest

from cs336_basics.cli import COMMANDS, main


def _help(argv, capsys) -> str:
    with pytest.raises(SystemExit) as e:
        main([*argv, "--help"])
    assert e.value.code == 0
    return capsys.readouterr().out


def test_top_level_help_lists_every_command_with_what_it_does(capsys):
    out = _help([], capsys)
    for name, (_, text) in COMMANDS.items():
        assert re.search(rf"^\s+{name}\s+{re.escape(text[:30])}", out, re.M), name
    assert "--debug" in out


@pytest.mark.parametrize(
    "argv, expected",
    [
        (["quickstart"], ["fortune database", "--steps", "--out", "--threads", "--debug"]),
        (["train"], ["--set KEY=VALUE", "--sweep", "--resume RUN_DIR", "tinystories_cpu"]),
        (["generate"], ["--top-p", "--temperature", "0: greedy", "--max-new-tokens", "--seed"]),
        (["plot"], ["RUN_DIR", "--out", ".pdf", "--x-axis {step,tokens}", "--log-y"]),
        (["tokenizer"], ["train", "encode"]),
        (["tokenizer", "train"], ["--vocab-size", "--special-token TOKEN", "--workers"]),
        (["tokenizer", "encode"], ["--tokenizer", "--input", "--out"]),
        (["model-info"], ["GPT-2", "--seq-len", "--json"]),
        (["data", "download"], ["{tinystories,owt}", "--out"]),
    ],
)
def test_command_help_answers_its_questions(capsys, argv, expected):
    out = _help(argv, capsys)
    for text in expected:
        assert text in out, (argv, text)


@pytest.mark.parametrize(
    ("command", "shown"),
    [
        (
            ["generate"],
            [
                "default 128",
                "0: greedy (default 1.0)",
                "(default 1.0: off)",
                "default <|endoftext|>",
            ],
        ),
        (["quickstart"], ["output directory (default runs/quickstart)", "--seed SEED  default 0"]),
        (["plot"], ["default step", "figure title"]),
    ],
)
def test_help_shows_the_defaults(capsys, command, shown):
    out = " ".join(_help(command, capsys).split())
    for text in shown:
        assert " ".join(text.split()) in out
