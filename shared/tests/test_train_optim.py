import pytest
import torch

from cs336_common.train import AdamW


def _model_pair():
    model = torch.nn.Sequential(torch.nn.Linear(10, 20), torch.nn.Tanh(), torch.nn.Linear(20, 3))
    twin = torch.nn.Sequential(torch.nn.Linear(10, 20), torch.nn.Tanh(), torch.nn.Linear(20, 3))
    twin.load_state_dict(model.state_dict())
    return model, twin


def _groups(model, kwargs_a, kwargs_b):
    """Two groups: weights and biases with different hyperparameters."""
    weights = [p for n, p in model.named_parameters() if n.endswith("weight")]
    biases = [p for n, p in model.named_parameters() if n.endswith("bias")]
    return [{"params": weights, **kwargs_a}, {"params": biases, **kwargs_b}]


def _train(model, opt, batches, lrs):
    for (x, y), lr in zip(batches, lrs, strict=True):
        for group in opt.param_groups:
            group["lr"] = lr * group.get("lr_scale", 1.0)
        opt.zero_grad(set_to_none=True)
        torch.nn.functional.mse_loss(model(x), y).backward()
        opt.step()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_matches_torch_adamw_over_many_steps(dtype):
    model, twin = _model_pair()
    model.to(dtype)
    twin.to(dtype)
    a = dict(betas=(0.9, 0.95), eps=1e-8, weight_decay=0.1)
    b = dict(betas=(0.8, 0.999), eps=1e-6, weight_decay=0.0, lr_scale=0.5)
    ours = AdamW(_groups(model, a, b), lr=1e-3)
    ref = torch.optim.AdamW(_groups(twin, a, b), lr=1e-3, foreach=False)
    batches = [
        (torch.randn(32, 10, dtype=dtype), torch.randn(32, 3, dtype=dtype)) for _ in range(200)
    ]
    # a changing learning rate, as under a schedule
    lrs = [3e-3 * (1 - i / 250) for i in range(200)]
    start = [p.detach().clone() for p in model.parameters()]
    _train(model, ours, batches, lrs)
    _train(twin, ref, batches, lrs)
    for p, q in zip(model.parameters(), twin.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=0, atol=1e-6)
    # the parameters moved far more than the tolerance, so the comparison has teeth
    moved = max((p - s).abs().max().item() for p, s in zip(model.parameters(), start, strict=True))
    assert moved > 0.05


def test_params_without_grad_are_skipped_and_state_round_trips():
    model, twin = _model_pair()
    ours = AdamW(model.parameters(), lr=1e-2, weight_decay=0.1)
    ref = torch.optim.AdamW(twin.parameters(), lr=1e-2, weight_decay=0.1)
    x, y = torch.randn(8, 10), torch.randn(8, 3)
    for step in range(6):
        for m, opt in ((model, ours), (twin, ref)):
            opt.zero_grad(set_to_none=True)
            torch.nn.functional.mse_loss(m(x), y).backward()
            if step % 2:  # the first layer's bias sometimes has no gradient
                m[0].bias.grad = None
            opt.step()
        if step == 2:  # a state-dict round trip mid-run changes nothing
            fresh = AdamW(model.parameters(), lr=1e-2, weight_decay=0.1)
            fresh.load_state_dict(ours.state_dict())
            ours = fresh
    for p, q in zip(model.parameters(), twin.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=0, atol=1e-6)


def test_rejects_bad_hyperparameters():
    params = [torch.nn.Parameter(torch.zeros(2))]
    with pytest.raises(ValueError, match="lr"):
        AdamW(params, lr=-1)
    with pytest.raises(ValueError, match="betas"):
        AdamW(params, betas=(0.9, 1.0))


def test_compiled_step_matches_torch_adamw_without_recompiling(monkeypatch):
    """compile=True: lr (scheduled) and t change every step, yet one graph serves all."""
    torch._dynamo.reset()
    monkeypatch.setattr(torch._dynamo.config, "error_on_recompile", True)
    model, twin = _model_pair()
    ours = AdamW(model.parameters(), lr=1e-3, weight_decay=0.1, compile=True)
    ref = torch.optim.AdamW(twin.parameters(), lr=1e-3, weight_decay=0.1)
    batches = [(torch.randn(32, 10), torch.randn(32, 3)) for _ in range(30)]
    lrs = [3e-3 * (i + 1) / 30 for i in range(30)]
    _train(model, ours, batches, lrs)
    _train(twin, ref, batches, lrs)
    for p, q in zip(model.parameters(), twin.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=0, atol=1e-6)


def test_compiled_step_reads_no_scalar_back_to_the_host(monkeypatch):
    """The compiled update must not call ``Tensor.item()``: on a GPU that is a
    device-to-host copy, and the host then waits for the whole backward pass before it
    can queue the update (it did, through ``_foreach_add_`` of a 0-dim tensor)."""
    torch._dynamo.reset()
    model, _ = _model_pair()
    opt = AdamW(model.parameters(), lr=1e-3, weight_decay=0.1, compile=True)
    batches = [(torch.randn(32, 10), torch.randn(32, 3)) for _ in range(4)]
    _train(model, opt, batches[:2], [1e-3] * 2)  # compiles
    reads = []
    item = torch.Tensor.item
    monkeypatch.setattr(torch.Tensor, "item", lambda t: reads.append(t.shape) or item(t))
    _train(model, opt, batches[2:], [1e-3] * 2)
    assert reads == []
