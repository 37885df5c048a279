import json
import re
from pathlib import Path

from cs336_basics.cli import main
from cs336_basics.train_config import load_train_config
from cs336_common import ModelConfig, count_parameters, flops_per_token


def test_model_info_prints_the_gpt2_table(capsys):
    assert main(["model-info"]) == 0
    out = capsys.readouterr().out
    for name in ("gpt2-small", "gpt2-medium", "gpt2-large", "gpt2-xl"):
        assert name in out
    assert "2.13B" in out  # GPT-2 XL parameters
    assert "feed-forward" in out and "%" in out


def test_model_info_json_matches_accounting(tmp_path, capsys):
    cfg = ModelConfig(vocab_size=500, context_length=64, d_model=64, num_layers=2, num_heads=4)
    path = tmp_path / "cfg.json"
    path.write_text(json.dumps({"model": cfg.to_dict(), "lr": 1e-3}))
    assert main(["model-info", "--config", str(path), "gpt2-xl", "--seq-len", "32", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows["cfg"]["params"] == count_parameters(cfg)
    assert rows["cfg"]["flops"]["total"] == 32 * flops_per_token(cfg, 32)["total"]
    assert rows["gpt2-xl"]["fp32_bytes"] == 4 * 2_127_057_600


def test_model_info_rejects_unknown_config(capsys):
    assert main(["model-info", "--config", "gpt5"]) == 1
    assert re.fullmatch(r"cs336-basics: error: --config 'gpt5' is neither a preset .*\n",
                        capsys.readouterr().err)  # fmt: skip
    bad = '{"vocab_size": 10, "context_length": 8, "d_model": 30, "num_layers": 1, "num_heads": 4}'
    assert main(["model-info", "--config", bad]) == 1
    assert re.search(r"error: --config model '\{.*\}': .*num_heads", capsys.readouterr().err)


def test_model_info_reads_train_configs(tmp_path, capsys):
    # a TOML file, a file whose `base` chain overrides the model, and a shipped config name
    owt = str(Path(__file__).parents[1] / "src/cs336_basics/configs/owt.toml")
    (tmp_path / "wide.toml").write_text(f'base = "{owt}"\n[model]\nd_model = 1024\n')
    args = ["model-info", "--config", owt, str(tmp_path / "wide.toml"), "ablation_nope", "--json"]
    assert main(args) == 0
    rows = json.loads(capsys.readouterr().out)
    expected = {
        "owt": load_train_config(owt).model,
        "wide": load_train_config(tmp_path / "wide.toml").model,
        "ablation_nope": load_train_config("ablation_nope").model,
    }
    assert set(rows) == set(expected)
    for name, cfg in expected.items():
        assert rows[name]["params"] == count_parameters(cfg)
    assert expected["wide"].d_model == 1024 and expected["owt"].d_model != 1024
    assert expected["owt"].vocab_size == 32000
