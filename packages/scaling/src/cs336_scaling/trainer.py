"""The service's trainer: one configuration trained for real, through the common training
loop (`cs336_common.train.TrainLoop`), on the model the course's API trained.

Model: ``ModelConfig.from_architecture("scaling-api")`` (learned absolute positions,
LayerNorm, GeLU MLP of width 4·d_model, dropout 0.1, untied embeddings) at the query's
shape. Tokens trained: ``train_flops / (6 · 12 · num_layers · d_model²)``, in steps of
``batch_size × context_length`` tokens. AdamW (weight decay 0.01), gradient clipping 1.0,
cosine decay from the query's learning rate to a tenth of it, no warm-up. The answer is
the mean loss over held-out tokens (the token file's tail), in eval mode.
"""

from __future__ import annotations

import math
from importlib import resources
from pathlib import Path

import numpy as np
import torch

from cs336_scaling.settings import tokens_for


def default_token_file() -> Path:
    return Path(str(resources.files("cs336_scaling") / "data" / "fortunes" / "tokens.bin"))


def train_run(config: dict, settings: dict, device: str | None = None, on_log=None) -> float:
    """Train ``config`` (the six query fields) under the service ``settings`` (a dict of
    `ServiceSettings` fields); return the final held-out loss."""
    from cs336_common.device import resolve_device
    from cs336_common.nn import ModelConfig, TransformerLM
    from cs336_common.train import AdamW, LoopConfig, RandomBatches, TrainLoop
    from cs336_common.train.schedule import get_lr_cosine_schedule

    dev = resolve_device(device or "auto")
    torch.manual_seed(settings["seed"])
    train, val, vocab_size = _data(settings)
    ctx, batch = settings["context_length"], config["batch_size"]
    model_config = ModelConfig.from_architecture(
        "scaling-api",
        vocab_size=vocab_size,
        context_length=ctx,
        d_model=config["d_model"],
        num_layers=config["num_layers"],
        num_heads=config["num_heads"],
        attention_backend="torch",
    )
    model = TransformerLM.from_config(model_config, device=dev)
    steps = max(1, round(tokens_for(config) / (batch * ctx)))
    lr = config["learning_rate"]
    precision = settings["precision"]
    if precision == "auto":
        precision = "bf16" if dev.type == "cuda" else "fp32"
    loop = TrainLoop(
        model,
        AdamW(model.parameters(), lr=lr, weight_decay=0.01),
        RandomBatches(train, batch, ctx, dev, seed=settings["seed"]),
        LoopConfig(
            max_steps=steps, grad_clip=1.0, precision=precision, log_every=max(steps // 20, 1)
        ),
        lr_schedule=lambda step: get_lr_cosine_schedule(step, lr, lr / 10, 0, steps),
        evaluate=lambda m: held_out_loss(m, val, ctx, batch, settings["eval_tokens"], dev),
        on_log=on_log or (lambda row: _print_row(row, steps)),
    )
    result = loop.run()
    loss = result.val_loss
    if loss is None or not math.isfinite(loss):
        raise RuntimeError(f"training ended with a non-finite loss ({loss})")
    return float(loss)


def _print_row(row: dict, steps: int) -> None:
    """Progress in the job's log (submitit keeps a run's stdout in its jobs/ folder)."""
    print(
        f"step {row['step']}/{steps}  loss {row['train_loss']:.4f}  "
        f"{row['tokens_per_s']:,.0f} tok/s  {row['wall_time_s']:.1f} s",
        flush=True,
    )


def held_out_loss(
    model, tokens: np.ndarray, ctx: int, batch: int, max_tokens: int, device
) -> float:
    """Mean next-token loss over consecutive non-overlapping windows of held-out tokens
    (the same windows for every run, so losses compare)."""
    from cs336_common.train import cross_entropy

    windows = min((len(tokens) - 1) // ctx, max(max_tokens // ctx, 1))
    total, count = 0.0, 0
    for start in range(0, windows, batch):
        idx = np.arange(start, min(start + batch, windows))[:, None] * ctx + np.arange(ctx + 1)
        chunk = torch.from_numpy(tokens[idx].astype(np.int64)).to(device)
        loss = cross_entropy(model(chunk[:, :-1]), chunk[:, 1:])
        total, count = total + float(loss) * len(idx), count + len(idx)
    return total / count


def _data(settings: dict):
    from cs336_common.train.token_file import open_token_file, token_file_vocab_size

    path = settings["token_file"] or default_token_file()
    tokens = open_token_file(path)
    vocab_size = token_file_vocab_size(path) or int(tokens.max()) + 1
    split = int(len(tokens) * (1 - settings["val_fraction"]))
    ctx = settings["context_length"]
    if split <= ctx or len(tokens) - split <= ctx:
        raise ValueError(
            f"{path}: {len(tokens)} tokens are too few for context_length {ctx} with "
            f"val_fraction {settings['val_fraction']}"
        )
    return tokens[:split], tokens[split:], vocab_size
