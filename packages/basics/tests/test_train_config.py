import json

import pytest

from cs336_basics import TrainConfig, load_train_config
from cs336_basics.train_config import load_sweep, resume_changes, shipped_configs
from cs336_common.errors import InputError

BASE = """
train_data = "t.bin"
out_dir = "runs/base"
max_steps = 100
lr = 1e-3

[model]
vocab_size = 100
context_length = 32
d_model = 64
num_layers = 2
num_heads = 4
"""


@pytest.fixture
def base(tmp_path):
    path = tmp_path / "base.toml"
    path.write_text(BASE)
    return path


def test_every_shipped_config_loads():
    expected = {
        "tinystories", "tinystories_cpu", "owt", "ablation_no_rmsnorm", "ablation_post_norm",
        "ablation_nope", "ablation_silu", "lr_sweep", "batch_size_sweep", "quickstart",
    }  # fmt: skip
    assert set(shipped_configs()) == expected
    runs = {name: load_sweep(name) for name in expected}
    ts = runs["tinystories"][0]
    m = ts.model
    assert (m.vocab_size, m.context_length, m.d_model, m.d_ff) == (10000, 256, 512, 1344)
    assert (m.num_layers, m.num_heads, m.rope_theta) == (4, 16, 10000.0)
    assert ts.num_steps * ts.tokens_per_step == ts.total_tokens == 327_680_000
    cpu = runs["tinystories_cpu"][0]
    assert cpu.num_steps * cpu.tokens_per_step == 40_960_000 and cpu.model == m
    assert ts.fused_loss and ts.cuda_graphs and cpu.fused_loss and not cpu.compile
    assert runs["owt"][0].model.vocab_size == 32000
    assert not runs["ablation_no_rmsnorm"][0].model.use_rmsnorm
    assert runs["ablation_post_norm"][0].model.norm_position == "post"
    assert not runs["ablation_nope"][0].model.use_rope
    assert runs["ablation_silu"][0].model.ffn == "silu"
    qs = runs["quickstart"][0]
    assert (qs.max_steps, qs.model.vocab_size, qs.model.d_model) == (400, 2048, 192)
    assert qs.tokenizer == "runs/quickstart/tokenizer" and ts.tokenizer.endswith("tokenizer")
    lrs = [c.lr for c in runs["lr_sweep"]]
    assert len(lrs) > 3 and len(set(lrs)) == len(lrs)
    assert len({c.out_dir for c in runs["batch_size_sweep"]}) == len(runs["batch_size_sweep"])


def test_overrides_are_typed_and_dotted(base):
    cfg = load_train_config(
        base, ["model.d_model=128", "lr=3e-4", "compile=true", "out_dir=runs/x"]
    )
    assert cfg.model.d_model == 128 and cfg.lr == 3e-4 and cfg.compile is True
    assert cfg.out_dir == "runs/x"
    assert load_train_config(base, ["warmup_steps=7"]).warmup_steps == 7
    # ints are accepted for floats
    assert load_train_config(base, ["lr=1"]).lr == 1.0
    # setting the token budget replaces max_steps
    cfg = load_train_config(base, ["total_tokens=6400", "batch_size=4"])
    assert cfg.max_steps is None and cfg.num_steps == 6400 // (4 * 32)


@pytest.mark.parametrize(
    "override, message",
    [
        ("batch_size=2.5", "TrainConfig.batch_size must be int"),
        ("lr=fast", "TrainConfig.lr must be float"),
        ("compile=1", "TrainConfig.compile must be bool"),
        ("model.d_modle=3", "did you mean model.d_model"),
        ("lrate=1", "unknown setting lrate"),
        ("model.num_heads=5", "divisible by num_heads"),
        ("beta2=1.0", "beta2 must lie in"),
        ("precision=fp16", "precision must be one of"),
        ("nonsense", "expected KEY=VALUE"),
    ],
)
def test_bad_values_name_the_field(base, override, message):
    with pytest.raises(ValueError, match=message):
        load_train_config(base, [override])


def test_cuda_graphs_apply_only_to_one_compiled_cuda_micro_batch(base):
    import torch

    from cs336_basics.trainer import uses_cuda_graphs

    cuda, cpu = torch.device("cuda"), torch.device("cpu")
    on = ["compile=true", "cuda_graphs=true"]
    assert uses_cuda_graphs(load_train_config(base, on), cuda)
    assert not uses_cuda_graphs(load_train_config(base, on), cpu)
    assert not uses_cuda_graphs(load_train_config(base, ["cuda_graphs=true"]), cuda)
    assert not uses_cuda_graphs(load_train_config(base, [*on, "grad_accum_steps=2"]), cuda)
    assert not uses_cuda_graphs(load_train_config(base, ["compile=true"]), cuda)


def test_fused_loss_is_free_to_change_on_resume(base):
    saved = load_train_config(base).to_dict()
    assert saved["fused_loss"] is False and load_train_config("tinystories").fused_loss
    changed = load_train_config(base, ["fused_loss=true"])
    assert resume_changes(saved, changed) == {"fused_loss": [False, True]}
    with pytest.raises(InputError, match="batch_size"):  # while a fixed field is refused
        resume_changes(saved, load_train_config(base, ["fused_loss=true", "batch_size=3"]))


def test_base_inheritance_and_sweeps(base, tmp_path):
    (tmp_path / "sweep.toml").write_text(
        'base = "base.toml"\n[model]\nuse_rope = false\n'
        "[sweep]\nlr = [1e-3, 3e-3]\nmodel.d_model = [32, 64]\n"
    )
    runs = load_sweep(tmp_path / "sweep.toml", ["max_steps=5"], ["batch_size=1,2"])
    assert len(runs) == 8
    assert all(not c.model.use_rope and c.max_steps == 5 for c in runs)
    assert {(c.lr, c.model.d_model, c.batch_size) for c in runs} == {
        (lr, d, b) for lr in (1e-3, 3e-3) for d in (32, 64) for b in (1, 2)
    }
    assert runs[0].out_dir == "runs/base/lr=0.001,model.d_model=32,batch_size=1"
    with pytest.raises(ValueError, match="sweep of 4 runs"):
        load_train_config(tmp_path / "sweep.toml", ["max_steps=5"])


def test_a_run_length_in_a_file_replaces_its_bases(base, tmp_path):
    (tmp_path / "budget.toml").write_text('base = "base.toml"\ntotal_tokens = 6400\n')
    cfg = load_train_config(tmp_path / "budget.toml")
    assert cfg.max_steps is None and cfg.total_tokens == 6400
    (tmp_path / "steps.toml").write_text('base = "budget.toml"\nmax_steps = 7\n')
    cfg = load_train_config(tmp_path / "steps.toml")
    assert cfg.max_steps == 7 and cfg.total_tokens is None
    # a shipped base that sets total_tokens
    (tmp_path / "ts.toml").write_text('base = "tinystories"\nmax_steps = 1000\n')
    cfg = load_train_config(tmp_path / "ts.toml")
    assert cfg.max_steps == 1000 and cfg.total_tokens is None
    # a file setting both is still an error
    (tmp_path / "both.toml").write_text('base = "base.toml"\nmax_steps = 5\ntotal_tokens = 6400\n')
    with pytest.raises(ValueError, match="exactly one of max_steps and total_tokens"):
        load_train_config(tmp_path / "both.toml")


def test_a_run_length_sweep_replaces_the_other(base):
    runs = load_sweep("tinystories", sweep=["max_steps=10,20"])
    assert [(c.max_steps, c.total_tokens) for c in runs] == [(10, None), (20, None)]
    runs = load_sweep(base, sweep=["total_tokens=6400,12800"])
    assert [(c.max_steps, c.num_steps) for c in runs] == [(None, 6), (None, 12)]  # 32·32/step
    with pytest.raises(ValueError, match="not both"):
        load_sweep(base, sweep=["max_steps=1,2", "total_tokens=6400"])


def test_to_json_with_a_callable_attention_backend(base):
    cfg = load_train_config(base)
    cfg.model.attention_backend = lambda q, k, v, mask=None: q
    d = json.loads(cfg.to_json())
    assert d["model"]["attention_backend"] == "torch"
    assert cfg.to_dict()["model"]["attention_backend"] == "torch"
    assert callable(cfg.model.attention_backend)  # the config itself is left alone
    back = TrainConfig.from_json(cfg.to_json())
    assert back.model.attention_backend == "torch" and back.model.d_model == 64


def test_yaml_and_json_round_trip(base, tmp_path):
    cfg = load_train_config(base)
    (tmp_path / "c.json").write_text(cfg.to_json())
    assert load_train_config(tmp_path / "c.json") == cfg
    assert TrainConfig.from_json(cfg.to_json()) == cfg
    yaml = pytest.importorskip("yaml")
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg.to_dict()))
    assert load_train_config(tmp_path / "c.yaml") == cfg


def test_yaml_without_pyyaml_says_so(base, tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "yaml", None)
    (tmp_path / "c.yaml").write_text("lr: 1\n")
    with pytest.raises(ValueError, match="PyYAML"):
        load_train_config(tmp_path / "c.yaml")


def test_missing_config_lists_shipped_ones():
    with pytest.raises(FileNotFoundError, match="tinystories_cpu"):
        load_train_config("no_such_config")
