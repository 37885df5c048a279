from cs336_basics.cli import main


def test_quickstart_help_runs(capsys):
    try:
        main(["quickstart", "--help"])
    except SystemExit as e:
        assert e.code == 0
    assert "quickstart" in capsys.readouterr().out
