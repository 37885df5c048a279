"""The training loop: `train(config)` runs a `TrainConfig` into its run directory (see
`run_dir`), `load_trained_model(run_dir)` gives back the latest weights.

A run is deterministic given its config: batches come from one numpy generator seeded
by ``config.seed``, whose state is saved in every checkpoint with the step, the optimizer
and torch's RNG, so a resumed run continues exactly where the uninterrupted one would.
"""

from __future__ import annotations

import json
import math
import statistics
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from cs336_basics.run_dir import RunDir
from cs336_basics.train_config import TrainConfig, resume_changes
from cs336_common.device import peak_flops, resolve_device, tf32_matmuls
from cs336_common.errors import InputError
from cs336_common.io import write_text_atomic
from cs336_common.lock import locked_dir
from cs336_common.nn import ModelConfig, TransformerLM, flops_per_token, load_model_config
from cs336_common.tokenizer import Tokenizer
from cs336_common.train.batches import RandomBatches
from cs336_common.train.checkpoint import load_checkpoint
from cs336_common.train.interrupt import Interrupted
from cs336_common.train.loop import (
    LoopConfig,
    TrainingDiverged,
    TrainLoop,
    fused_lm_loss,
    lm_loss,
)
from cs336_common.train.metrics import MetricsLog, model_flops_utilization, start_wandb
from cs336_common.train.optim import AdamW
from cs336_common.train.schedule import get_lr_cosine_schedule
from cs336_common.train.token_file import open_token_file, token_file_vocab_size

__all__ = ["TrainResult", "TrainingDiverged", "load_trained_model", "train"]


@dataclass
class TrainResult:
    run_dir: Path
    steps: int
    tokens: int
    train_loss: float  # mean over the last logging interval
    val_loss: float | None  # on the fixed validation batches after the last step
    wall_time_s: float  # across all sessions of a resumed run
    already_finished: bool = False  # resumed a run that had reached its last step
    tokens_per_s: float | None = None  # median of this session's logged rows but the first
    mfu: float | None = None  # model FLOPs utilisation at that speed (None: unknown peak)


def train(
    config: TrainConfig,
    *,
    resume: bool = False,
    progress: bool = True,
    allow_schedule_change: bool = False,
) -> TrainResult:
    """Train ``config.model`` on ``config.train_data`` into ``config.out_dir`` with
    `cs336_common.train.TrainLoop`, holding the run directory's lock throughout.

    ``resume=True`` continues from the run directory's newest loadable checkpoint (a
    fresh start when it has none). A resumed config may not change the model or the data
    (`InputError` names the fields); changes of the schedule or length need
    ``allow_schedule_change`` and are recorded in ``history.jsonl``. Resuming a run that
    reached its last step returns at once with ``already_finished``.

    Raises `TrainingDiverged` on a NaN/inf loss, keeping the last good checkpoint;
    FileExistsError when starting over a run that has checkpoints; `DirectoryLocked`
    when another process trains into the same directory; and `Interrupted` (a
    KeyboardInterrupt) after SIGINT or SIGTERM, once the current step is done and
    checkpointed.
    """
    run = RunDir(config.out_dir)
    with locked_dir(run.path):
        device = resolve_device(config.device)
        with tf32_matmuls(device):
            return _train(run, config, device, resume, progress, allow_schedule_change)


def _train(
    run: RunDir, config: TrainConfig, device: torch.device, resume, progress, allow_schedule_change
):
    if not resume and run.all_checkpoints():
        raise FileExistsError(
            f"{run.path} already holds checkpoints; resume it (--resume {run.path}) "
            "or choose another out_dir"
        )
    previous = run.read_config() if resume else None
    changes = {} if previous is None else resume_changes(previous, config, allow_schedule_change)
    tokenizer = load_run_tokenizer(config)
    precision = _precision(config, device)
    torch.manual_seed(config.seed)
    model = TransformerLM.from_config(config.model, device=device)
    train_data = open_train_data(config.train_data, config.model)
    data_on_device = _fits_on_device(train_data, device)
    batches = RandomBatches(
        train_data,
        config.batch_size,
        config.model.context_length,
        device,
        config.seed,
        on_device=data_on_device,
    )
    loss_fn = _loss_fn(config, device)
    val_batches = _fixed_val_batches(config, device)
    loop = TrainLoop(
        model,
        _optimizer(model, config),
        batches,
        _loop_config(config, run, precision, resume),
        loss_fn=loss_fn,
        lr_schedule=lambda step: get_lr_cosine_schedule(
            step,
            config.lr,
            config.min_lr,
            config.warmup_steps,
            config.cosine_steps or config.num_steps,
        ),
        evaluate=(lambda m: _mean_loss(m, loss_fn, val_batches)) if val_batches else None,
    )
    step = loop.start()
    if step > config.num_steps:
        raise InputError(
            f"{run.path} is at step {step}, past the {config.num_steps} steps the new "
            "settings allow; a run cannot be shortened below its checkpoints"
        )
    if step and step == config.num_steps:
        return _finished(run, step)
    _record_session(run, config, step, changes, tokenizer)

    fwd_flops = flops_per_token(config.model)["total"]
    peak = peak_flops(device, precision)
    log = MetricsLog(run.metrics, _wandb(config, run))
    bar = tqdm(total=config.num_steps, initial=step, unit="step", disable=not progress)
    if progress:
        bar.write(_summary(config, model, device, precision, step, data_on_device))
    speeds = []  # tokens/s of this session's rows

    def on_log(row: dict) -> None:
        row["mfu"] = model_flops_utilization(row["tokens_per_s"], fwd_flops, peak)
        log.write(row)
        speeds.append(row["tokens_per_s"])
        bar.set_postfix(_postfix(row), refresh=False)

    loop.on_log = on_log
    loop.on_phase = lambda phase: bar.update() if phase == "optimizer" else None
    try:
        result = loop.run()
    except Interrupted:
        bar.write(f"stopped at step {loop.step}; continue: cs336-basics train --resume {run.path}")
        raise
    finally:
        bar.close()
        log.close()
    # the first row holds the compilation: the median of the others is the steady speed
    speed = statistics.median(speeds[1:] or speeds) if speeds else None
    return TrainResult(
        run_dir=run.path,
        steps=result.steps,
        tokens=result.tokens,
        train_loss=result.train_loss,
        val_loss=result.val_loss,
        wall_time_s=result.wall_time_s,
        tokens_per_s=speed,
        mfu=None if speed is None else model_flops_utilization(speed, fwd_flops, peak),
    )


def load_trained_model(run_dir: str | Path, device: str | torch.device = "cpu") -> TransformerLM:
    """The model of ``run_dir`` with the weights of its latest checkpoint, in eval mode."""
    run = RunDir(run_dir)
    if not run.config.is_file():
        raise FileNotFoundError(f"{run.config} not found: is {run_dir} a training run directory?")
    checkpoint = run.latest_checkpoint()
    if checkpoint is None:
        raise FileNotFoundError(f"{run.checkpoints} holds no checkpoint yet")
    model = TransformerLM.from_config(load_model_config(run.config), device=device)
    load_checkpoint(checkpoint, model)
    return model.eval()


@torch.no_grad()
def _mean_loss(model, loss_fn, batches) -> float:
    """The mean loss over ``batches``, which already lie on the model's device."""
    return (sum(loss_fn(model, batch) for batch in batches) / len(batches)).item()


# ---- setup ---------------------------------------------------------------------------


def uses_cuda_graphs(config: TrainConfig, device: torch.device) -> bool:
    """``cuda_graphs`` takes effect when compiling on CUDA with one micro-batch per step (a
    replay would overwrite the earlier micro-batches' gradients); the run's banner says
    whether it did."""
    return (
        config.cuda_graphs
        and config.compile
        and device.type == "cuda"
        and config.grad_accum_steps == 1
    )


def _loss_fn(config: TrainConfig, device: torch.device):
    loss = fused_lm_loss if config.fused_loss else lm_loss
    if not config.compile:
        return loss
    if not uses_cuda_graphs(config, device):
        return torch.compile(loss, dynamic=False)
    graphed = torch.compile(loss, dynamic=False, mode="reduce-overhead")

    def loss_fn(model, batch):
        # A new step: the graphs' outputs from the last one may be overwritten. The loop
        # keeps copies of its losses only, and the gradients are gone (zero_grad).
        torch.compiler.cudagraph_mark_step_begin()
        return graphed(model, batch)

    return loss_fn


def _fits_on_device(data: np.ndarray, device: torch.device) -> bool:
    """Keep the token file in GPU memory (batches gathered there: no host work per step
    but one small copy) when it takes at most an eighth of the free memory."""
    if device.type != "cuda":
        return False
    free, _ = torch.cuda.mem_get_info(device)
    return data.nbytes <= free // 8


def _loop_config(config: TrainConfig, run: RunDir, precision: str, resume: bool) -> LoopConfig:
    return LoopConfig(
        max_steps=config.num_steps,
        grad_accum_steps=config.grad_accum_steps,
        grad_clip=config.grad_clip,
        precision=precision,
        log_every=config.log_every,
        eval_every=config.eval_every,
        checkpoint_every=config.checkpoint_every,
        keep_checkpoints=config.keep_checkpoints,
        checkpoint_dir=str(run.checkpoints),
        resume=resume,
    )


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


def open_train_data(path: str, model: ModelConfig) -> np.memmap:
    """A token file checked for training ``model``: its sidecar, the vocabulary it was
    encoded with (equal to the model's: a smaller one means another tokenizer), every id,
    and more tokens than one context. The command line calls it for every run of a sweep
    before the first starts; the id scan is done once per file (`open_token_file`
    remembers it)."""
    if not Path(path).is_file():
        raise FileNotFoundError(
            f"token file {path} not found; make it with `cs336-basics tokenizer encode` "
            "(see the Training section of packages/basics/README.md)"
        )
    vocab = token_file_vocab_size(path)
    if vocab is not None and vocab != model.vocab_size:
        raise InputError(
            f"{path} was encoded with a vocabulary of {vocab} tokens, but model.vocab_size "
            f"is {model.vocab_size}; they must match (was it encoded with another tokenizer?)"
        )
    data = open_token_file(path, model.vocab_size)
    if len(data) <= model.context_length:
        raise InputError(
            f"{path}: {len(data)} tokens, need more than context_length={model.context_length}"
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
    data = open_train_data(config.val_data, config.model)
    draws = RandomBatches(
        data, config.batch_size, config.model.context_length, device, [config.seed, 1]
    )
    return [next(draws) for _ in range(config.eval_batches)]


def _summary(config, model, device, precision, step, data_on_device) -> str:
    params = sum(p.numel() for p in model.parameters())
    start = f", resuming at step {step}" if step else ""
    how = [precision]
    if config.compile:
        graphs = uses_cuda_graphs(config, device)
        how.append("compiled with CUDA graphs" if graphs else "compiled")
    if config.fused_loss:
        how.append("fused LM head + loss")
    if data_on_device:
        how.append("token file in GPU memory")
    return (
        f"training {params / 1e6:.2f}M parameters on {device} ({', '.join(how)}): "
        f"{config.num_steps} steps of {config.tokens_per_step:,} tokens into "
        f"{config.out_dir}{start}"
    )


def _postfix(row: dict) -> dict:
    postfix = {"loss": f"{row['train_loss']:.3f}", "tok/s": f"{row['tokens_per_s']:,.0f}"}
    if row["mfu"] is not None:
        postfix["MFU"] = f"{row['mfu']:.1%}"
    if row["val_loss"] is not None:
        postfix["val"] = f"{row['val_loss']:.3f}"
    return postfix


# ---- the run directory ------------------------------------------------------------------


def _record_session(run: RunDir, config: TrainConfig, step: int, changes: dict, tokenizer) -> None:
    """Before training: drop metrics rows past the checkpoint (a resumed run logs those
    steps again), write config.json and the tokenizer, and append to the history."""
    if step:
        rows = [r for r in run.read_metrics() if r["step"] <= step]
        write_text_atomic(run.metrics, "".join(json.dumps(r) + "\n" for r in rows))
    else:
        run.metrics.unlink(missing_ok=True)
        run.history.unlink(missing_ok=True)
        if tokenizer is not None:
            tokenizer.save(run.tokenizer)
    write_text_atomic(run.config, config.to_json())
    run.append_history(step, changes)


def _finished(run: RunDir, step: int) -> TrainResult:
    rows = run.read_metrics()
    last = rows[-1] if rows else {}
    val = next((r["val_loss"] for r in reversed(rows) if r.get("val_loss") is not None), None)
    return TrainResult(
        run_dir=run.path,
        steps=step,
        tokens=last.get("tokens", 0),
        train_loss=last.get("train_loss", math.nan),
        val_loss=val,
        wall_time_s=last.get("wall_time_s", 0.0),
        already_finished=True,
    )


def load_run_tokenizer(config: TrainConfig) -> Tokenizer | None:
    """The config's tokenizer, checked against the model's vocabulary (they must be equal:
    a sampled id past the tokenizer could not be decoded)."""
    if config.tokenizer is None:
        return None
    tokenizer = Tokenizer.load(config.tokenizer)
    if tokenizer.vocab_size != config.model.vocab_size:
        raise InputError(
            f"tokenizer {config.tokenizer} has {tokenizer.vocab_size} tokens, but "
            f"model.vocab_size is {config.model.vocab_size}; they must match"
        )
    return tokenizer
