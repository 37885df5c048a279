"""The training loop: `train(config)` runs a `TrainConfig` into its run directory (see
`run_dir`), `load_trained_model(run_dir)` gives back the latest weights.

A run is deterministic given its config: batches come from one numpy generator seeded
by ``config.seed``, whose state is saved in every checkpoint with the step, the optimizer
and torch's RNG, so a resumed run continues exactly where the uninterrupted one would.
"""

from __future__ import annotations

import contextlib
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from cs336_basics.run_dir import RunDir
from cs336_basics.train_config import TrainConfig
from cs336_common.device import peak_flops, resolve_device
from cs336_common.io import write_text_atomic
from cs336_common.nn import ModelConfig, TransformerLM, flops_per_token
from cs336_common.train.batches import get_batch
from cs336_common.train.checkpoint import (
    load_checkpoint,
    read_checkpoint,
    restore_checkpoint,
    save_checkpoint,
)
from cs336_common.train.clipping import gradient_clipping
from cs336_common.train.interrupt import deferred_interrupt
from cs336_common.train.loss import cross_entropy
from cs336_common.train.metrics import MetricsLog, Throughput, start_wandb
from cs336_common.train.optim import AdamW
from cs336_common.train.schedule import get_lr_cosine_schedule
from cs336_common.train.token_file import open_token_file


@dataclass
class TrainResult:
    run_dir: Path
    steps: int
    tokens: int
    train_loss: float  # mean over the last logging interval
    val_loss: float | None  # on the fixed validation batches after the last step
    wall_time_s: float  # across all sessions of a resumed run


class TrainingDiverged(RuntimeError):
    """The loss or gradient norm became NaN or infinite."""


def train(config: TrainConfig, *, resume: bool = False, progress: bool = True) -> TrainResult:
    """Train ``config.model`` on ``config.train_data`` into ``config.out_dir``.

    ``resume=True`` continues from the run directory's latest checkpoint (a fresh start
    when it has none). Raises `TrainingDiverged` on a NaN/inf loss, keeping the last good
    checkpoint; FileExistsError when starting over a run that has checkpoints; and
    KeyboardInterrupt after Ctrl-C, once the current step is done and checkpointed.
    """
    run = RunDir(config.out_dir)
    device = resolve_device(config.device)
    precision = _precision(config, device)
    if device.type == "cuda":
        # TF32 matmuls: fp32 range with a 10-bit mantissa, at tensor-core speed
        torch.set_float32_matmul_precision("high")
    torch.manual_seed(config.seed)
    model = TransformerLM.from_config(config.model, device=device)
    optimizer = _optimizer(model, config)
    train_data = _open(config.train_data, config.model)
    val_batches = _fixed_val_batches(config, device)
    rng = np.random.default_rng(config.seed)
    step, wall_before, last_good = _start_or_resume(run, config, model, optimizer, rng, resume)

    loss_fn = torch.compile(_forward_loss, dynamic=False) if config.compile else _forward_loss
    autocast = _autocast(device, precision)
    fwd_flops = flops_per_token(config.model)["total"]
    meter = Throughput(
        config.tokens_per_step, fwd_flops, peak_flops(device, precision), wall_before
    )
    log = MetricsLog(run.metrics, _wandb(config, run))
    bar = tqdm(total=config.num_steps, initial=step, unit="step", disable=not progress)
    if progress:
        bar.write(_summary(config, model, device, precision, step))
    pending, row = [], {}  # (loss, grad norm) device tensors since the last row
    try:
        with deferred_interrupt() as stop_requested:
            while step < config.num_steps:
                lr = _set_lr(optimizer, config, step)
                pending.append(
                    _step(model, optimizer, loss_fn, train_data, rng, device, autocast, config)
                )
                step += 1
                meter.step()
                bar.update()
                stop = stop_requested()
                last = step == config.num_steps
                save = stop or last or step % config.checkpoint_every == 0
                evaluate = last or step % config.eval_every == 0
                if not (save or evaluate or step % config.log_every == 0):
                    continue
                row = _interval_row(step, pending, lr, last_good, meter, config)
                pending = []
                if evaluate:
                    row["val_loss"] = _evaluate(model, loss_fn, val_batches, device, autocast)
                log.write(row)
                bar.set_postfix(_postfix(row), refresh=False)
                if save:
                    last_good = _save(run, model, optimizer, rng, row, config.keep_checkpoints)
                if stop:
                    bar.write(
                        f"stopped at step {step}; continue: cs336-basics train --resume {run.path}"
                    )
                    raise KeyboardInterrupt
                meter.restart()
    finally:
        bar.close()
        log.close()
    return TrainResult(
        run_dir=run.path,
        steps=step,
        tokens=step * config.tokens_per_step,
        train_loss=row.get("train_loss", math.nan),
        val_loss=row.get("val_loss"),
        wall_time_s=row.get("wall_time_s", wall_before),
    )


def load_trained_model(run_dir: str | Path, device: str | torch.device = "cpu") -> TransformerLM:
    """The model of ``run_dir`` with the weights of its latest checkpoint, in eval mode."""
    run = RunDir(run_dir)
    if not run.config.is_file():
        raise FileNotFoundError(f"{run.config} not found: is {run_dir} a training run directory?")
    checkpoint = run.latest_checkpoint()
    if checkpoint is None:
        raise FileNotFoundError(f"{run.checkpoints} holds no checkpoint yet")
    model_cfg = ModelConfig.from_dict(json.loads(run.config.read_text(encoding="utf-8"))["model"])
    model = TransformerLM.from_config(model_cfg, device=device)
    load_checkpoint(checkpoint, model)
    return model.eval()


# ---- one step ------------------------------------------------------------------------


def _forward_loss(model: TransformerLM, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return cross_entropy(model(x), y)


def _step(model, optimizer, loss_fn, data, rng, device, autocast, config):
    """One optimizer step over ``grad_accum_steps`` micro-batches; returns the mean loss
    and the gradient norm before clipping, as device tensors (no sync)."""
    total = torch.zeros((), device=device)
    for _ in range(config.grad_accum_steps):
        x, y = get_batch(data, config.batch_size, config.model.context_length, device, rng=rng)
        with autocast:
            loss = loss_fn(model, x, y)
        # each micro-batch's gradient counts 1/accum, so the sum is the full batch's mean
        (loss / config.grad_accum_steps).backward()
        total += loss.detach()
    max_norm = config.grad_clip if config.grad_clip > 0 else math.inf
    grad_norm = gradient_clipping(model.parameters(), max_norm)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return total / config.grad_accum_steps, grad_norm


def _set_lr(optimizer, config: TrainConfig, step: int) -> float:
    cosine_steps = config.cosine_steps or config.num_steps
    lr = get_lr_cosine_schedule(step, config.lr, config.min_lr, config.warmup_steps, cosine_steps)
    for group in optimizer.param_groups:
        group["lr"] = lr
    return lr


def _interval_row(step, pending, lr, last_good, meter, config) -> dict:
    """The metrics row of the steps since the last one. The loop's only host-device
    sync happens here, once per row: the losses are checked and averaged."""
    losses, norms = (torch.stack(ts).cpu() for ts in zip(*pending, strict=True))
    _check_finite(losses, norms, step, lr, last_good)
    return dict(
        step=step,
        tokens=step * config.tokens_per_step,
        train_loss=losses.mean().item(),
        val_loss=None,
        lr=lr,
        grad_norm=norms.mean().item(),
        **meter.measure(),
    )


@torch.no_grad()
def _evaluate(model, loss_fn, batches, device, autocast) -> float | None:
    """The mean loss over ``batches``, which already lie on ``device``."""
    if not batches:
        return None
    model.eval()
    total = torch.zeros((), device=device)
    for x, y in batches:
        with autocast:
            total += loss_fn(model, x, y)
    model.train()
    return total.item() / len(batches)


def _check_finite(losses, norms, step, lr, last_good) -> None:
    bad = ~(torch.isfinite(losses) & torch.isfinite(norms))
    if not bad.any():
        return
    i = int(bad.nonzero()[0])
    first = step - len(losses) + 1 + i
    kept = f"the last good checkpoint is {last_good}" if last_good else "no checkpoint was written"
    raise TrainingDiverged(
        f"training diverged at step {first}: loss {losses[i].item()}, gradient norm "
        f"{norms[i].item()} (lr {lr:.3g}). Stopped; {kept}. Try a lower lr, more warmup "
        "or a smaller grad_clip."
    )


# ---- setup ---------------------------------------------------------------------------


def _start_or_resume(run, config, model, optimizer, rng, resume) -> tuple[int, float, Path | None]:
    """Restore the latest checkpoint (resume) or start an empty run; write config.json.
    Returns the step, the wall time so far and the checkpoint resumed from."""
    latest = run.latest_checkpoint() if resume else None
    if latest is None:
        _start(run)
        step, wall_before = 0, 0.0
    else:
        step, wall_before = _restore(latest, model, optimizer, rng)
        _truncate_metrics(run, step)
    # rewritten on resume too: overrides such as a longer budget belong to the run
    write_text_atomic(run.config, config.to_json())
    return step, wall_before, latest


def _autocast(device: torch.device, precision: str):
    if precision == "bf16":
        return torch.autocast(device.type, torch.bfloat16)
    return contextlib.nullcontext()


def _wandb(config: TrainConfig, run: RunDir):
    if not config.wandb:
        return None
    name = config.run_name or run.path.name
    return start_wandb(config.wandb_project, name, config.to_dict(), run.path)


def _precision(config: TrainConfig, device: torch.device) -> str:
    if config.precision != "auto":
        return config.precision
    return "bf16" if device.type == "cuda" else "fp32"


def _optimizer(model: torch.nn.Module, config: TrainConfig) -> AdamW:
    """Weight decay on matrices only: decaying RMSNorm gains toward 0 would fight the
    normalisation they exist to rescale."""
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [
        {"params": [p for p in params if p.ndim >= 2], "weight_decay": config.weight_decay},
        {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0},
    ]
    return AdamW(
        [g for g in groups if g["params"]],
        lr=config.lr,
        betas=(config.beta1, config.beta2),
        eps=config.eps,
        compile=config.compile,
    )


def _open(path: str, model: ModelConfig) -> np.memmap:
    if not Path(path).is_file():
        raise FileNotFoundError(
            f"token file {path} not found; make it with `cs336-basics tokenizer encode` "
            "(see the Training section of packages/basics/README.md)"
        )
    data = open_token_file(path)
    if len(data) <= model.context_length:
        raise ValueError(
            f"{path}: {len(data)} tokens, need more than context_length={model.context_length}"
        )
    # ids beyond the vocabulary would fail deep inside the embedding; check a sample
    sample = data[: 1 << 20]
    if sample.size and int(sample.max()) >= model.vocab_size:
        raise ValueError(
            f"{path}: token id {int(sample.max())} >= model.vocab_size={model.vocab_size}; "
            "was it encoded with another tokenizer?"
        )
    return data


def _fixed_val_batches(
    config: TrainConfig, device: torch.device
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """``eval_batches`` batches drawn once (from a generator of their own), kept on
    ``device`` and reused by every evaluation, so validation losses of one run are
    comparable step to step."""
    if config.val_data is None:
        return []
    data = _open(config.val_data, config.model)
    rng = np.random.default_rng([config.seed, 1])
    ctx = config.model.context_length
    return [
        get_batch(data, config.batch_size, ctx, device, rng=rng) for _ in range(config.eval_batches)
    ]


def _start(run: RunDir) -> None:
    if run.all_checkpoints():
        raise FileExistsError(
            f"{run.path} already holds checkpoints; resume it (--resume {run.path}) "
            "or choose another out_dir"
        )
    run.metrics.unlink(missing_ok=True)


def _summary(config, model, device, precision, step) -> str:
    params = sum(p.numel() for p in model.parameters())
    start = f", resuming at step {step}" if step else ""
    return (
        f"training {params / 1e6:.2f}M parameters on {device} ({precision}"
        f"{', compiled' if config.compile else ''}): {config.num_steps} steps of "
        f"{config.tokens_per_step:,} tokens into {config.out_dir}{start}"
    )


def _postfix(row: dict) -> dict:
    postfix = {"loss": f"{row['train_loss']:.3f}", "tok/s": f"{row['tokens_per_s']:,.0f}"}
    if row["val_loss"] is not None:
        postfix["val"] = f"{row['val_loss']:.3f}"
    return postfix


# ---- checkpoints -----------------------------------------------------------------------


def _save(run: RunDir, model, optimizer, rng, row: dict, keep: int) -> Path:
    path = run.checkpoint(row["step"])
    extra = {
        "numpy_rng": rng.bit_generator.state,
        "torch_rng": torch.get_rng_state(),
        "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "wall_time_s": row["wall_time_s"],
    }
    save_checkpoint(model, optimizer, row["step"], path, extra=extra)
    run.set_latest(path)
    if keep:
        for old in run.all_checkpoints()[:-keep]:
            old.unlink()
    return path


def _restore(path: Path, model, optimizer, rng) -> tuple[int, float]:
    payload = read_checkpoint(path)
    step = restore_checkpoint(payload, model, optimizer)
    extra = payload["extra"]
    rng.bit_generator.state = extra["numpy_rng"]
    torch.set_rng_state(extra["torch_rng"])
    if extra["cuda_rng"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(extra["cuda_rng"])
    return step, extra["wall_time_s"]


def _truncate_metrics(run: RunDir, step: int) -> None:
    """Drop rows logged after the checkpoint: the resumed run logs those steps again."""
    rows = [r for r in run.read_metrics() if r["step"] <= step]
    write_text_atomic(run.metrics, "".join(json.dumps(r) + "\n" for r in rows))
