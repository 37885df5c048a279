"""Models, data and the single-process reference trainer shared by the distributed tests.

Everything is float64 so that "equal to single-process training" can be checked
tightly: distributed runs differ from the reference only in summation order.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from cs336_common import TransformerLM
from cs336_common.train import AdamW
from cs336_systems import DDPBucketed

BATCH = 8  # full batch; each of the 2 ranks trains on half of it
VOCAB, SEQ = 24, 6


class ToyMLP(nn.Module):
    """Three layers; the middle one frozen; optionally a parameter forward never uses."""

    def __init__(self, with_unused: bool = True):
        super().__init__()
        self.fc1 = nn.Linear(10, 16)
        self.fc2 = nn.Linear(16, 16)
        self.fc3 = nn.Linear(16, 4)
        self.fc2.requires_grad_(False)
        self.unused = nn.Parameter(torch.randn(5)) if with_unused else None

    def forward(self, x):
        return self.fc3(torch.relu(self.fc2(torch.relu(self.fc1(x)))))


class TiedLM(nn.Module):
    """Embedding and output projection share one weight."""

    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(VOCAB, 12)
        self.hidden = nn.Linear(12, 12)
        self.head = nn.Linear(12, VOCAB, bias=False)
        self.head.weight = self.embed.weight

    def forward(self, ids):
        return self.head(torch.tanh(self.hidden(self.embed(ids))))


def make(name: str, seed: int, **kwargs) -> nn.Module:
    torch.manual_seed(seed)
    if name == "mlp":
        model = ToyMLP(**kwargs)
    elif name == "tied":
        model = TiedLM()
    else:
        model = TransformerLM(
            vocab_size=VOCAB, context_length=SEQ, d_model=16, num_layers=2, num_heads=2, d_ff=24
        )
    return model.double()


def batch(name: str, step: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The full batch of a step, identical on every rank."""
    g = torch.Generator().manual_seed(1000 + step)
    if name == "mlp":
        x = torch.randn(BATCH, 10, generator=g, dtype=torch.float64)
        return x, torch.randn(BATCH, 4, generator=g, dtype=torch.float64)
    ids = torch.randint(0, VOCAB, (BATCH, SEQ + 1), generator=g)
    return ids[:, :-1], ids[:, 1:]


def local(t: torch.Tensor, rank: int, world: int) -> torch.Tensor:
    return t.chunk(world)[rank]


def loss_fn(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    out = model(x)
    if out.dtype.is_floating_point and y.dtype.is_floating_point:
        return F.mse_loss(out, y)
    return F.cross_entropy(out.reshape(-1, out.shape[-1]), y.reshape(-1))


def adamw(params) -> torch.optim.Optimizer:
    return AdamW(params, lr=1e-2, weight_decay=0.1)


def train_reference(name: str, steps: int, device: str | torch.device = "cpu", **kwargs):
    """Single-process full-batch AdamW training from rank 0's initialisation, on
    ``device`` (compare GPU runs with a GPU reference: CPU and GPU kernels round
    differently, and AdamW's first steps amplify that)."""
    model = make(name, seed=0, **kwargs).to(device)
    opt = adamw(model.parameters())
    for step in range(steps):
        opt.zero_grad()
        loss_fn(model, *(t.to(device) for t in batch(name, step))).backward()
        opt.step()
    return model


def assert_same_params(got: dict[str, torch.Tensor], want: nn.Module, what: str, **tol) -> None:
    want_sd = want.state_dict()
    assert got.keys() == want_sd.keys(), what
    for k, v in want_sd.items():
        torch.testing.assert_close(got[k], v, msg=lambda m, k=k: f"{what}: {k}: {m}", **tol)


def grads_match_torch_ddp(rank: int, world: int, device, steps: int = 3) -> None:
    """`DDPBucketed`'s gradients equal PyTorch DDP's (``gradient_as_bucket_view=True``)
    at every step, whether ``p.grad`` was lent its bucket slot, kept, or dropped after
    forward (float64: only the summation order may differ)."""
    tight = dict(rtol=1e-12, atol=1e-14)
    ours_model = make("lm", seed=rank).to(device)
    ref_model = make("lm", seed=rank).to(device)
    ours = DDPBucketed(ours_model, 0.001)  # a few parameters a bucket
    ref = DistributedDataParallel(
        ref_model,
        device_ids=[device.index] if device.type == "cuda" else None,
        bucket_cap_mb=0.001,
        gradient_as_bucket_view=True,
    )
    opts = adamw(ours_model.parameters()), adamw(ref_model.parameters())
    for step in range(steps):
        x, y = (local(t, rank, world).to(device) for t in batch("lm", step))
        ours.on_train_batch_start()
        loss = loss_fn(ours, x, y)
        if step == steps - 1:  # dropped after forward: copied into the buckets, not lent
            ours_model.zero_grad(set_to_none=True)
        loss.backward()
        ours.finish_gradient_synchronization()
        loss_fn(ref, x, y).backward()
        pairs = zip(ours_model.named_parameters(), ref_model.parameters(), strict=True)
        for (name, p), q in pairs:
            torch.testing.assert_close(p.grad, q.grad, **tight, msg=f"step {step} {name}")
        for opt in opts:
            opt.step()
            opt.zero_grad(set_to_none=step % 2 == 0)  # lent again, or kept: both accumulate in
