import json
import math
from pathlib import Path

import pytest
import torch

from cs336_alignment.cli import main


def test_about_names_the_package(capsys):
    assert main(["about"]) == 0
    assert capsys.readouterr().out.startswith("cs336-alignment ")


def test_help_lists_the_commands(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    for cmd in ("eval", "sft", "expert-iteration", "grpo", "dpo", "export", "demo"):
        assert cmd in out


def test_grpo_help_shows_the_config_flags(capsys):
    with pytest.raises(SystemExit):
        main(["grpo", "--help"])
    out = capsys.readouterr().out
    for flag in ("--loss-type", "--group-size", "--no-use-std-normalization",
                 "--length-normalization", "--epochs-per-rollout-batch", "--resume"):  # fmt: skip
        assert flag in out


def test_missing_model_is_one_line(tmp_path, capsys):
    code = main(["eval", "gsm8k", "--model", str(tmp_path / "nope"), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 1 and "nope: no such directory" in err and "Traceback" not in err


def test_math_needs_data(tmp_path, capsys):
    model_dir = _save_tiny(tmp_path)
    with pytest.raises(SystemExit) as e:
        main(["eval", "math", "--model", str(model_dir), "--out", str(tmp_path / "o")])
    assert e.value.code == 2 and "needs --data" in capsys.readouterr().err


def test_bad_config_value_is_a_usage_error(tmp_path, capsys):
    model_dir = _save_tiny(tmp_path)
    with pytest.raises(SystemExit) as e:
        main(["grpo", "--model", str(model_dir), "--out", str(tmp_path / "o"),
              "--rollout-batch-size", "10", "--group-size", "4"])  # fmt: skip
    assert e.value.code == 2 and "multiple of group_size" in capsys.readouterr().err


def test_zero_length_normalization_is_a_usage_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        main(["grpo", "--model", str(tmp_path), "--out", str(tmp_path / "o"),
              "--length-normalization", "0"])  # fmt: skip
    err = capsys.readouterr().err
    assert e.value.code == 2 and "length_normalization must be > 0 (a token count), got 0.0" in err


def test_dpo_bad_batch_split_is_a_usage_error(tmp_path, capsys):
    data = tmp_path / "pairs.jsonl"
    data.write_text('{"prompt": "p", "chosen": "a", "rejected": "b"}\n')
    with pytest.raises(SystemExit) as e:
        main(["dpo", "--model", str(tmp_path), "--out", str(tmp_path / "o"), "--data", str(data),
              "--batch-size", "6", "--gradient-accumulation-steps", "4"])  # fmt: skip
    assert e.value.code == 2 and "multiple of gradient_acc" in capsys.readouterr().err


def _save_tiny(tmp_path):
    from cs336_alignment.demo import byte_tokenizer
    from cs336_alignment.policy_io import save_policy
    from cs336_common import TransformerLM

    torch.manual_seed(0)
    return save_policy(TransformerLM(257, 1024, 32, 1, 2, 64), byte_tokenizer(), tmp_path / "m")


def test_eval_writes_metrics_and_categories(tmp_path, capsys):
    pytest.importorskip("cs336_common.engine")
    model_dir = _save_tiny(tmp_path)
    data = tmp_path / "q.jsonl"
    data.write_text("".join(json.dumps({"question": f"{i}+1?", "answer": f"#### {i + 1}"}) + "\n"
                            for i in range(3)))  # fmt: skip
    out = tmp_path / "eval"
    assert main(["eval", "math", "--model", str(model_dir), "--out", str(out), "--data",
                 str(tmp_path / "m.jsonl")]) == 1  # fmt: skip
    assert "m.jsonl" in capsys.readouterr().err
    assert main(["eval", "gsm8k", "--model", str(model_dir), "--out", str(out), "--data",
                 str(data), "--max-new-tokens", "4"]) == 0  # fmt: skip
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["n"] == 3 and metrics["format_error_rate"] == 1.0 and metrics["accuracy"] == 0
    assert len((out / "format_error.jsonl").read_text().splitlines()) == 3
    assert main(["eval", "sst", "--model", str(model_dir), "--out", str(tmp_path / "sst"),
                 "--limit", "2", "--max-new-tokens", "3"]) == 0  # fmt: skip
    rows = [
        json.loads(x) for x in (tmp_path / "sst" / "sst_outputs.jsonl").read_text().splitlines()
    ]
    assert len(rows) == 2 and set(rows[0]) == {"prompts_final", "output"}


def test_export_command_round_trip(tmp_path):
    from cs336_alignment.policy_io import load_policy

    src = _save_tiny(tmp_path)
    assert main(["export", str(src), str(tmp_path / "hf")]) == 0
    assert (tmp_path / "hf" / "config.json").is_file()
    assert main(["export", str(tmp_path / "hf"), str(tmp_path / "back")]) == 0
    a, _ = load_policy(src)
    b, _ = load_policy(tmp_path / "back")
    for k, v in a.state_dict().items():
        assert torch.equal(b.state_dict()[k], v), k
    assert main(["export", str(src), str(tmp_path / "hf")]) == 1  # not empty


def test_sft_then_grpo_commands(tmp_path, capsys):
    pytest.importorskip("cs336_common.train.loop")
    model_dir = _save_tiny(tmp_path)
    common = ["--eval-limit", "2", "--examples", "8", "--device", "cpu"]
    sft = ["sft", "--model", str(model_dir), "--out", str(tmp_path / "sft"), "--steps", "2",
           "--batch-size", "4", "--gradient-accumulation-steps", "1", "--eval-max-tokens", "4",
           "--checkpoint-every", "0", *common]  # fmt: skip
    assert main(sft) == 0
    grpo = ["grpo", "--model", str(tmp_path / "sft" / "final"), "--out", str(tmp_path / "g"),
            "--n-grpo-steps", "1", "--rollout-batch-size", "4", "--group-size", "2",
            "--train-batch-size", "4", "--gradient-accumulation-steps", "2",
            "--sampling-max-tokens", "4", "--loss-type", "grpo_clip", *common]  # fmt: skip
    assert main(grpo) == 0
    rows = [json.loads(x) for x in (tmp_path / "g" / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["step"] == 1 and "time_rollout_s" in rows[-1]
    capsys.readouterr()
    assert main(grpo) == 1  # the folder holds a run: --resume or another folder
    assert "already holds checkpoints" in capsys.readouterr().err
    assert main([*grpo, "--resume"]) == 0  # finished: nothing left to do


def test_expert_iteration_into_a_run_needs_resume(tmp_path, capsys):
    model_dir, out = _save_tiny(tmp_path), tmp_path / "ei"
    out.mkdir()
    (out / "ei.jsonl").write_text('{"ei_step": 0, "sampled": 8, "kept": 0}\n')
    assert main(["expert-iteration", "--model", str(model_dir), "--out", str(out)]) == 1
    err = _error(capsys)
    assert f"--out {out} already holds an expert-iteration run: pass --resume" in err


def _error(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    return err


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"\xff\xfe", ": not UTF-8 text (invalid start byte at byte 0)"),
        (b"", ": no examples (the file is empty)"),
        (b"[1]\n", ":1: expected a JSON object, got list"),
    ],
)
def test_malformed_eval_data_is_one_line_naming_the_file(tmp_path, capsys, content, expected):
    model_dir, data = _save_tiny(tmp_path), tmp_path / "d.jsonl"
    data.write_bytes(content)
    code = main(["eval", "math", "--model", str(model_dir), "--out", str(tmp_path / "o"),
                 "--data", str(data)])  # fmt: skip
    assert code == 1 and f"{data}{expected}" in _error(capsys)


def test_training_data_that_is_not_objects_is_one_line(tmp_path, capsys):
    model_dir, data = _save_tiny(tmp_path), tmp_path / "d.jsonl"
    data.write_text('{"prompt": "a", "response": "b"}\n3\n')
    code = main(["sft", "--model", str(model_dir), "--out", str(tmp_path / "o"),
                 "--data", str(data), "--steps", "1"])  # fmt: skip
    assert code == 1 and f"{data}:2: expected a JSON object, got int" in _error(capsys)


def test_data_folder_is_named_as_a_folder(tmp_path, capsys):
    model_dir = _save_tiny(tmp_path)
    code = main(["eval", "math", "--model", str(model_dir), "--out", str(tmp_path / "o"),
                 "--data", str(tmp_path)])  # fmt: skip
    assert code == 1 and f"{tmp_path} is a folder; expected a data file" in _error(capsys)


@pytest.mark.parametrize("command", [["eval", "arithmetic"], ["sft"]])
def test_out_that_is_the_model_directory_is_refused(tmp_path, capsys, command):
    model_dir = _save_tiny(tmp_path)
    before = sorted(p.name for p in model_dir.iterdir())
    code = main([*command, "--model", str(model_dir), "--out", str(model_dir)])
    assert code == 1 and "is the --model directory" in _error(capsys)
    assert sorted(p.name for p in model_dir.iterdir()) == before


@pytest.mark.parametrize(
    ("flag", "value", "expected"),
    [
        ("--learning-rate", "-1", "expected a finite number >= 0, got '-1'"),
        ("--group-size", "0", "expected an integer >= 1, got '0'"),
        ("--eval-every", "-1", "expected an integer >= 0, got '-1'"),
        ("--precision", "fp13", "invalid choice: 'fp13'"),
    ],
)
def test_out_of_range_config_flag_is_a_usage_error(tmp_path, capsys, flag, value, expected):
    with pytest.raises(SystemExit) as e:
        main(["grpo", "--model", str(tmp_path), "--out", str(tmp_path / "o"), flag, value])
    err = capsys.readouterr().err
    assert e.value.code == 2 and f"argument {flag}: {expected}" in err


def test_eval_entropies_fit_a_response_that_re_encodes_longer(our_tokenizer):
    """A sampled text may re-encode into more tokens than the context holds."""
    from cs336_alignment.rl_common import PeriodicEval
    from cs336_common import TransformerLM

    torch.manual_seed(0)
    model = TransformerLM(our_tokenizer.vocab_size, 16, 32, 1, 2, 64)
    evaluator = PeriodicEval(None, our_tokenizer, [], None, 8, 1, None)
    records = [{"prompt": "one two three four", "response": " five" * 30}]
    (entropy,) = evaluator._entropies(model, records)
    assert 0 < entropy <= math.log(our_tokenizer.vocab_size) + 1e-4


def test_export_errors_name_its_positional_arguments(tmp_path, capsys):
    assert main(["export", str(tmp_path / "nope"), str(tmp_path / "x")]) == 1
    assert f"SRC {tmp_path / 'nope'}: no such directory" in _error(capsys)
    model_dir = _save_tiny(tmp_path)
    assert main(["export", str(model_dir), str(model_dir)]) == 1
    assert f"DST {model_dir} is also an input" in _error(capsys)


@pytest.mark.parametrize(
    ("command", "shown"),
    [
        (
            ["eval"],
            [
                "--max-new-tokens MAX_NEW_TOKENS default 512",
                "prompts per call (default 64)",
                "--top-p TOP_P default 1.0: off",
                "(default: all)",
            ],
        ),
        (
            ["grpo"],
            [
                "--precision {fp32,bf16} default fp32",
                "--no-use-std-normalization default True",
                "(default 4096)",
                "held-out examples (default 256)",
            ],
        ),
        (["dpo"], ["held-out pairs (default 256)"]),
        (["demo"], ["default cpu"]),
    ],
)
def test_help_shows_the_defaults(capsys, command, shown):
    with pytest.raises(SystemExit) as e:
        main([*command, "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert e.value.code == 0
    for text in shown:
        assert text in out


_SFT = ["--steps", "1", "--batch-size", "2", "--gradient-accumulation-steps", "1",
        "--examples", "4", "--eval-limit", "2", "--eval-max-tokens", "4", "--eval-every", "0",
        "--checkpoint-every", "1"]  # fmt: skip


@pytest.fixture
def sft_run(tmp_path, capsys):
    model_dir, out = _save_tiny(tmp_path), tmp_path / "run"
    assert main(["sft", "--model", str(model_dir), "--out", str(out), *_SFT]) == 0
    capsys.readouterr()
    return model_dir, out


def _resume_fails(capsys, argv, out, expected):
    before = (out / "metrics.jsonl").read_bytes()
    assert main([*argv, "--out", str(out), "--resume"]) == 1
    assert expected in _error(capsys)
    assert (out / "metrics.jsonl").read_bytes() == before


def test_resume_refuses_other_settings_another_command_and_another_model(tmp_path, capsys, sft_run):
    model_dir, out = sft_run
    sft = ["sft", "--model", str(model_dir), *_SFT]
    _resume_fails(capsys, [*sft, "--batch-size", "4"], out, "--resume: batch_size 2 -> 4;")
    grpo = ["grpo", "--model", str(model_dir), "--rollout-batch-size", "4", "--group-size", "2",
            "--train-batch-size", "4", "--gradient-accumulation-steps", "2"]  # fmt: skip
    _resume_fails(capsys, grpo, out, "config.json holds the settings of another command's run")
    from cs336_alignment.demo import byte_tokenizer
    from cs336_alignment.policy_io import save_policy
    from cs336_common import TransformerLM

    other = save_policy(TransformerLM(257, 1024, 16, 1, 2, 64), byte_tokenizer(), tmp_path / "o")
    _resume_fails(capsys, ["sft", "--model", str(other), *_SFT, "--steps", "2"], out,
                  "its checkpoint does not fit --model")  # fmt: skip


def test_resume_with_a_damaged_log_is_one_line(capsys, sft_run):
    model_dir, out = sft_run
    with open(out / "metrics.jsonl", "ab") as f:
        f.write(b"\xff\n")
    argv = ["sft", "--model", str(model_dir), *_SFT, "--steps", "2"]
    _resume_fails(capsys, argv, out, "metrics.jsonl: not UTF-8 text")


@pytest.mark.parametrize(("prompt", "start"), [("alpaca_sft", "Below is an instruction"),
                                               ("zero_shot_system_prompt", "# Instruction")])  # fmt: skip
def test_eval_gsm8k_takes_the_instruction_templates(tmp_path, capsys, prompt, start):
    model_dir, out = _save_tiny(tmp_path), tmp_path / "o"
    argv = ["eval", "gsm8k", "--model", str(model_dir), "--out", str(out), "--limit", "1",
            "--max-new-tokens", "2", "--prompt", prompt]  # fmt: skip
    assert main(argv) == 0
    (row,) = [json.loads(line) for line in (out / "examples.jsonl").read_text().splitlines()]
    assert row["prompt"].startswith(start) and "{" not in row["prompt"][:200]


def test_eval_refuses_a_prompt_its_task_ignores(tmp_path, capsys):
    model_dir = _save_tiny(tmp_path)
    with pytest.raises(SystemExit) as e:
        main(["eval", "sst", "--model", str(model_dir), "--out", str(tmp_path / "o"),
              "--prompt", "r1_zero"])  # fmt: skip
    err = capsys.readouterr().err
    assert e.value.code == 2
    assert "--prompt r1_zero does not apply to task sst, which always uses zero_shot" in err


def test_eval_never_overwrites_its_data(tmp_path, capsys):
    model_dir, out = _save_tiny(tmp_path), tmp_path / "evals"
    out.mkdir()
    data = out / "examples.jsonl"  # the name eval gives its own output
    data.write_text('{"question": "1+1?", "answer": "2"}\n')
    before = data.read_bytes()
    code = main(["eval", "arithmetic", "--model", str(model_dir), "--out", str(out),
                 "--data", str(data), "--max-new-tokens", "2"])  # fmt: skip
    assert code == 1 and f"--out {data} is also an input" in _error(capsys)
    assert data.read_bytes() == before and sorted(out.iterdir()) == [data]


def test_interrupted_export_leaves_nothing_behind(tmp_path, capsys, monkeypatch):
    import cs336_alignment.hf_export as hf_export

    def export_then_ctrl_c(model, tokenizer, out):
        (Path(out) / "config.json").write_text("{}")  # a first file, then Ctrl-C
        raise KeyboardInterrupt

    monkeypatch.setattr(hf_export, "export_to_hf", export_then_ctrl_c)
    src = _save_tiny(tmp_path)
    before = sorted(p.name for p in tmp_path.iterdir())
    assert main(["export", str(src), str(tmp_path / "hf")]) == 130
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no hf/, no temporary folder


@pytest.mark.parametrize(
    ("command", "row", "expected"),
    [
        (
            ["sft"],
            '{"prompt": "a", "response": 3}',
            "example 1: 'response' must be a string, got int",
        ),
        (
            ["dpo"],
            '{"prompt": ["a"], "chosen": "b", "rejected": "c"}',
            "example 1: 'prompt' must be a string, got list",
        ),
    ],
)
def test_training_data_fields_must_be_text(tmp_path, capsys, command, row, expected):
    data = tmp_path / "d.jsonl"
    data.write_text(row + "\n")
    # no model there: the data is read first, so its mistake is the one reported
    code = main([*command, "--model", str(tmp_path / "m"), "--out", str(tmp_path / "o"),
                 "--data", str(data)])  # fmt: skip
    assert code == 1 and f"{data}: {expected}" in _error(capsys)


def test_eval_data_of_unexpected_shape(tmp_path, capsys):
    model_dir, data = _save_tiny(tmp_path), tmp_path / "d.jsonl"
    data.write_text('{"question": "2+3?", "answer": 5}\n')  # a number, not GSM8K's text
    argv = ["eval", "gsm8k", "--model", str(model_dir), "--data", str(data),
            "--max-new-tokens", "2"]  # fmt: skip
    assert main([*argv, "--out", str(tmp_path / "g")]) == 0
    (row,) = [json.loads(line) for line in (tmp_path / "g" / "examples.jsonl").open()]
    assert row["ground_truth"] == "5"
    capsys.readouterr()
    data.write_text('{"subject": "s", "question": "q", "options": ["a", "b"], "answer": "A"}\n')
    argv[1] = "mmlu"
    assert main([*argv, "--out", str(tmp_path / "mmlu")]) == 1
    assert "example 1: 'options' must be a list of 4 choices" in _error(capsys)


def test_demo_names_what_its_out_already_holds(tmp_path, capsys):
    (tmp_path / "summary.json").write_text("{}")  # e.g. a tokenizer folder's summary
    assert main(["demo", "--preset", "test", "--out", str(tmp_path)]) == 1
    assert f"--out {tmp_path} already holds summary.json; choose a new folder" in _error(capsys)
    assert (tmp_path / "summary.json").read_text() == "{}"


def test_sigterm_mid_export_exits_143_and_leaves_nothing_behind(tmp_path):
    """SIGTERM (what `kill`, Slurm and Kubernetes send) while the export writes: exit 143
    with the one line 'interrupted', no traceback, no hf/ and no temporary folder."""
    import signal
    import subprocess
    import sys
    import time

    src, started = _save_tiny(tmp_path), tmp_path / "started"
    script = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "import cs336_alignment.hf_export as hf\n"
        "def slow_export(model, tokenizer, out):\n"
        "    (Path(out) / 'config.json').write_text('{}')\n"
        f"    Path({str(started)!r}).touch()\n"
        "    time.sleep(60)\n"
        "hf.export_to_hf = slow_export\n"
        "from cs336_alignment.cli import main\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    before = sorted(tmp_path.iterdir())
    argv = [sys.executable, "-c", script, "export", str(src), str(tmp_path / "hf")]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not started.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert err == "interrupted\n"
    assert sorted(tmp_path.iterdir()) == sorted([*before, started])
