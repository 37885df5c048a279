import json

import pytest

from cs336_scaling.cli import main


def test_about_names_the_package(capsys):
    assert main(["about"]) == 0
    assert capsys.readouterr().out.startswith("cs336-scaling ")


def test_help_lists_the_commands(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    for name in ("isoflops", "fit", "about"):
        assert name in out


def test_isoflops_json_shape_and_plots(tmp_path, capsys):
    assert main(["isoflops", "--json", "--out-dir", str(tmp_path)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out) == {"a", "b", "k_N", "k_D", "predictions"}
    assert set(out["predictions"]) == {"1e+23", "1e+24"}
    assert set(out["predictions"]["1e+23"]) == {"N_opt", "D_opt"}
    assert out["a"] + out["b"] == pytest.approx(1.0)
    n, d = out["predictions"]["1e+23"]["N_opt"], out["predictions"]["1e+23"]["D_opt"]
    assert 6 * n * d == pytest.approx(1e23)
    for name in ("isoflops_profiles.png", "n_opt.png", "d_opt.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_isoflops_text_output(capsys):
    assert main(["isoflops", "--no-plots", "--method", "parabola"]) == 0
    out = capsys.readouterr().out
    assert "N_opt = " in out and "C = 1e+24 FLOPs" in out


def test_fit_json_has_intervals(capsys):
    assert main(["fit", "--bootstrap", "3", "--json", "--targets", "1e20"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["params"]["alpha"] == pytest.approx(0.34, abs=1e-3)
    assert out["bootstrap"] == 3 and len(out["intervals"]["beta"]) == 2
    assert set(out["predictions"]["1e+20"]) >= {"N_opt", "D_opt", "loss", "loss_interval"}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "file not found"),
        ("{", "not a readable JSON file"),
        (
            '[{"parameters": 1, "compute_budget": -1, "final_loss": 2}]',
            "run 0 field 'compute_budget'",
        ),
    ],
)
def test_bad_input_is_one_line_exit_1(tmp_path, content, message, capsys):
    path = tmp_path / "runs.json"
    if content is not None:
        path.write_text(content)
    assert main(["isoflops", str(path), "--no-plots"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("cs336-scaling: error: ") and message in err and err.count("\n") == 1


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["predict", "--level", "1.5"], "argument --level: expected a number in (0, 1), got '1.5'"),
        (["fit", "--bootstrap", "-1"], "argument --bootstrap: expected an integer >= 0, got '-1'"),
        (["isoflops", "--targets", "0"], "argument --targets: expected a finite number > 0"),
        (["keys", "create", "x", "--budget", "-5"], "argument --budget: expected a finite"),
    ],
)
def test_bad_flag_values_are_usage_errors_exit_2(argv, message, capsys):
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2 and message in capsys.readouterr().err


def test_a_fit_that_cannot_run_names_the_file(tmp_path, capsys):
    path = tmp_path / "three.json"
    runs = [
        {"parameters": 1e6 * (i + 1), "compute_budget": 1e15, "final_loss": 3.0} for i in range(3)
    ]
    path.write_text(json.dumps(runs))
    assert main(["fit", str(path), "--bootstrap", "0"]) == 1
    err = capsys.readouterr().err
    assert (
        err
        == f"cs336-scaling: error: {path}: the parametric fit has 5 parameters; need >= 5 runs, got 3\n"
    )
    with pytest.raises(ValueError, match="need >= 5 runs"):  # --debug: the traceback
        main(["--debug", "fit", str(path), "--bootstrap", "0"])


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["fit", "--seed", "-1"], "argument --seed: expected an integer >= 0, got '-1'"),
        (["isoflops", "--min-runs", "0"], "argument --min-runs: expected an integer >= 1"),
        (["sweep", "--url", "localhost:8000", "--budgets", "1e13", "--total-budget", "1e15"],
         "argument --url: expected an http:// or https:// address, got 'localhost:8000'"),
        (["sweep", "--budgets", "-1", "--total-budget", "1e15"],
         "argument --budgets: expected a finite number > 0, got '-1'"),
        (["sweep", "--budgets", "1e13", "--total-budget", "1e15", "--batch-size", "0"],
         "argument --batch-size: expected an integer >= 1, got '0'"),
        (["sweep", "--budgets", "1e13", "--total-budget", "1e15", "--learning-rate=-1e-3"],
         "argument --learning-rate: expected a finite number > 0"),
        (["serve", "--port", "99999"], "argument --port: expected a port number in [0, 65535]"),
        (["serve", "--max-parallel", "-1"], "argument --max-parallel: expected an integer >= 0"),
    ],
)  # fmt: skip
def test_more_bad_flag_values_are_usage_errors_exit_2(argv, message, capsys):
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2 and message in capsys.readouterr().err


def _runs_file(path):
    runs = [
        {"parameters": 1e6 * (i + 1), "compute_budget": 1e15 * (j + 1), "final_loss": 3.0 + i}
        for i in range(3)
        for j in range(3)
    ]
    path.write_text(json.dumps(runs))
    return path


def one_error(capsys) -> str:
    err = capsys.readouterr().err
    assert err.startswith("cs336-scaling: error: ") and err.count("\n") == 1, err
    return err.removeprefix("cs336-scaling: error: ").strip()


def test_a_plot_never_replaces_the_runs_file(tmp_path, capsys):
    runs = _runs_file(tmp_path / "n_opt.png")  # the name of one of isoflops' plots
    before = runs.read_bytes()
    assert main(["isoflops", str(runs), "--out-dir", str(tmp_path)]) == 1
    assert (
        one_error(capsys) == f"--out-dir {runs} is also an input ({runs}); it would be overwritten"
    )
    assert main(["fit", str(runs), "--bootstrap", "0", "--plot", str(runs)]) == 1
    assert one_error(capsys) == f"--plot {runs} is also an input ({runs}); it would be overwritten"
    json_runs = _runs_file(tmp_path / "runs.json")
    assert main(["fit", str(json_runs), "--bootstrap", "0", "--plot", str(json_runs)]) == 1
    assert one_error(capsys) == f"--plot {json_runs}: the file name must end in .png"
    assert runs.read_bytes() == before and "[" in json_runs.read_text()


@pytest.mark.parametrize("command", ["isoflops", "predict"])
def test_an_out_dir_that_cannot_be_made_fails_before_the_fit(tmp_path, command, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    argv = [command, "--out-dir", str(blocker / "plots"), "--json"]
    assert main(argv + (["--bootstrap", "0"] if command == "predict" else [])) == 1
    out, err = capsys.readouterr()
    assert out == ""  # no fit printed: it failed first
    assert err.startswith("cs336-scaling: error: ") and err.count("\n") == 1
    message = err.removeprefix("cs336-scaling: error: ").strip()
    assert message.startswith(f"--out-dir {blocker / 'plots'}/") and message.endswith(
        f"{blocker} is a file, not a folder"
    )


def test_a_fit_of_the_shipped_runs_names_that_file(capsys):
    from cs336_scaling.runs import default_runs_path

    assert main(["isoflops", "--no-plots", "--min-runs", "100"]) == 1
    assert one_error(capsys).startswith(f"{default_runs_path()}: need >= 2 compute budgets")


def test_serve_refuses_a_trainer_that_is_not_there(tmp_path, capsys):
    argv = ["serve", "--state-dir", str(tmp_path / "s"), "--port", "0", "--trainer", "nope:fn"]
    assert main(argv) == 1
    assert one_error(capsys) == "trainer nope:fn: no module named 'nope'"


def test_keys_create_help_shows_examples(capsys):
    with pytest.raises(SystemExit) as e:
        main(["keys", "create", "--help"])
    assert e.value.code == 0
    assert "cs336-scaling keys create bob --budget 1e17" in capsys.readouterr().out
