"""`load_model_config`: every way a command names a model gives the same ModelConfig."""

import json

import pytest

from cs336_common.errors import InputError
from cs336_common.nn import MODEL_PRESETS, ModelConfig, load_model_config

TINY = MODEL_PRESETS["tiny"]


def test_presets_inline_json_and_overrides():
    assert load_model_config("tiny") == ModelConfig(**TINY)
    assert load_model_config("small", context_length=128) == ModelConfig.from_preset(
        "small", context_length=128
    )
    assert load_model_config(json.dumps(TINY)) == ModelConfig(**TINY)
    assert load_model_config({"preset": "tiny", "d_model": 32, "num_heads": 2}) == ModelConfig(
        **{**TINY, "d_model": 32, "num_heads": 2}
    )


def test_files_base_chains_and_run_directories(tmp_path):
    (tmp_path / "m.json").write_text(json.dumps(TINY))  # a bare model file
    assert load_model_config(tmp_path / "m.json") == ModelConfig(**TINY)
    base = tmp_path / "configs" / "base.toml"
    base.parent.mkdir()
    base.write_text('train_data = "x.bin"\n[model]\npreset = "tiny"\nnum_layers = 3\n')
    top = base.parent / "top.toml"
    top.write_text('base = "base.toml"\nlr = 1e-3\n[model]\nd_model = 128\n')
    want = ModelConfig(**{**TINY, "num_layers": 3, "d_model": 128})
    assert load_model_config(top) == want
    assert load_model_config("top", config_dirs=[base.parent]) == want  # a shipped name
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"model": want.to_dict(), "lr": 1e-3}))
    assert load_model_config(run) == want


def test_errors_name_the_spec(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"'nowhere' is neither a preset \(.*tiny"):
        load_model_config("nowhere")
    (tmp_path / "bad.toml").write_text("[model]\npreset = 'tiny'\nd_modl = 3\n")
    with pytest.raises(
        InputError, match=r"bad\.toml'.*unknown ModelConfig field\(s\) \['d_modl'\]"
    ):
        load_model_config(tmp_path / "bad.toml")
    (tmp_path / "loop.toml").write_text("base = 'loop.toml'\n")
    with pytest.raises(InputError, match="loops back"):
        load_model_config(tmp_path / "loop.toml")
    with pytest.raises(InputError, match="unknown preset 'huge'"):
        load_model_config({"preset": "huge"})
