import io

import pytest
import torch

from cs336_common.train import AdamW, load_checkpoint, save_checkpoint
from cs336_common.train.checkpoint import read_checkpoint


def _trained():
    model = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
    opt = AdamW(model.parameters(), lr=1e-2)
    for _ in range(3):
        opt.zero_grad()
        model(torch.randn(4, 6)).pow(2).mean().backward()
        opt.step()
    return model, opt


def _fresh():
    model = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
    return model, AdamW(model.parameters(), lr=1e-2)


@pytest.mark.parametrize("to_file_object", [False, True])
def test_round_trip_restores_model_optimizer_iteration(tmp_path, to_file_object):
    model, opt = _trained()
    target = io.BytesIO() if to_file_object else tmp_path / "ck" / "a.pt"
    save_checkpoint(model, opt, 123, target, extra={"note": "hi", "rng": torch.get_rng_state()})
    if to_file_object:
        target.seek(0)
    new_model, new_opt = _fresh()
    assert load_checkpoint(target, new_model, new_opt) == 123
    for p, q in zip(model.state_dict().values(), new_model.state_dict().values(), strict=True):
        assert torch.equal(p, q)
    assert new_opt.state_dict()["state"][0]["step"] == 3
    torch.testing.assert_close(
        new_opt.state_dict()["state"][0]["exp_avg"], opt.state_dict()["state"][0]["exp_avg"]
    )
    if to_file_object:
        target.seek(0)
    assert read_checkpoint(target)["extra"]["note"] == "hi"


def test_compiled_model_keys_are_clean(tmp_path):
    model, opt = _trained()
    compiled = torch.compile(model)  # wrapping only; nothing runs, so no compilation cost
    save_checkpoint(compiled, opt, 1, tmp_path / "c.pt")
    keys = read_checkpoint(tmp_path / "c.pt")["model"].keys()
    assert keys == model.state_dict().keys()
    target, _ = _fresh()
    load_checkpoint(tmp_path / "c.pt", torch.compile(target))
    assert torch.equal(target[0].weight, model[0].weight)


def test_failed_write_keeps_previous_checkpoint(tmp_path, monkeypatch):
    model, opt = _trained()
    path = tmp_path / "c.pt"
    save_checkpoint(model, opt, 1, path)
    before = path.read_bytes()

    def crash(obj, f):
        with open(f, "wb") as fh:
            fh.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(model, opt, 2, path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["c.pt"]


def test_refuses_pickled_code(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"model": {}, "fn": print}, path)
    with pytest.raises(Exception, match=r"(?i)weights_only"):
        read_checkpoint(path)
