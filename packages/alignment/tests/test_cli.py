from cs336_alignment.cli import main


def test_about_names_the_package(capsys):
    assert main(["about"]) == 0
    assert capsys.readouterr().out.startswith("cs336-alignment ")
