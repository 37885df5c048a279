"""`TrainLoop`: the training loop every package trains with.

    loop = TrainLoop(
        model,                                # plain nn.Module, on its device
        lambda m: AdamW(m.parameters(), lr=1e-3),  # or an Optimizer built on `model`
        batches,                              # iterator of (x, y) or (x, y, mask)
        LoopConfig(max_steps=1000, grad_accum_steps=2, grad_clip=1.0, precision="bf16",
                   checkpoint_dir="runs/a/checkpoints", checkpoint_every=200, resume=True),
        lr_schedule=lambda step: get_lr_cosine_schedule(step, 1e-3, 1e-4, 100, 1000),
        evaluate=lambda m: mean_val_loss(m),  # called every eval_every steps and at the end
        wrap=lambda m: DDPBucketed(m, 25),     # or torch.compile, FullyShardedDataParallel
        on_log=print,                          # one dict per logged interval
    )
    result = loop.run()                       # LoopResult: steps, tokens, losses, time

One step (`train_step`) runs ``grad_accum_steps`` micro-batches through ``loss_fn``
(default: cross-entropy of ``model(x)`` against ``y``, over the positions where ``mask``
is nonzero when the batch has one; `fused_lm_loss` is the same loss with the LM head
fused into it), under bf16 autocast if asked, then syncs the
gradients (a data-parallel wrapper's ``finish_gradient_synchronization``), clips them
and steps the optimizer. Losses stay on the device; the host syncs once per logged row.

Checkpoints (``checkpoint_dir``, written by rank 0) hold the model, the optimizer, the
step, the tokens seen, the wall time, torch's RNG and the batch iterator's
``state_dict()`` of every rank, so ``resume=True`` continues bitwise where the run left
off when the iterator has ``state_dict``/``load_state_dict`` (see `RandomBatches`). A
checkpoint that does not load is set aside and the previous one used. ``init_from``
starts from another run's weights only (fine-tuning). The first SIGINT or SIGTERM
finishes the step, checkpoints and raises `Interrupted` (its ``exit_code`` is 130 or 143).

Distributed: every rank runs the same loop on its own batches inside an initialised
process group, with ``wrap`` doing the data parallelism. Logged losses are averaged over
ranks; stop signals are agreed on at logged rows (a signal to one rank stops all).
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn

from cs336_common.errors import InputError
from cs336_common.train.checkpoint import CheckpointDir, checkpoint_payload, restore_checkpoint
from cs336_common.train.checkpoint import read_checkpoint as _read_checkpoint
from cs336_common.train.clipping import gradient_clipping
from cs336_common.train.interrupt import Interrupted, deferred_interrupt
from cs336_common.train.linear_loss import linear_cross_entropy
from cs336_common.train.loss import cross_entropy

Batch = tuple[Tensor, ...]  # (x, y) or (x, y, mask)


@dataclass
class LoopConfig:
    """How to train; what to train on is given to `TrainLoop` directly."""

    max_steps: int  # the run ends after this many optimizer steps
    grad_accum_steps: int = 1  # micro-batches per optimizer step
    grad_clip: float = 0.0  # max global L2 norm of the gradients (0: no clipping)
    precision: str = "fp32"  # "bf16": bf16 autocast of forward and loss, fp32 weights
    log_every: int = 10  # steps per logged row (also after the last step)
    eval_every: int = 0  # steps per evaluation (0: only after the last step)
    checkpoint_every: int = 0  # steps per checkpoint (0: only at the end and when stopped)
    keep_checkpoints: int = 0  # keep the newest N checkpoints (0: all)
    checkpoint_dir: str | None = None  # None: no checkpoints
    resume: bool = False  # continue from checkpoint_dir's newest loadable checkpoint
    init_from: str | None = None  # start from this checkpoint's weights (file or folder)

    def __post_init__(self):
        for name in ("max_steps", "grad_accum_steps", "log_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"LoopConfig.{name} must be >= 1, got {getattr(self, name)}")
        for name in ("grad_clip", "eval_every", "checkpoint_every", "keep_checkpoints"):
            if getattr(self, name) < 0:
                raise ValueError(f"LoopConfig.{name} must be >= 0, got {getattr(self, name)}")
        if self.precision not in ("fp32", "bf16"):
            raise ValueError(f"LoopConfig.precision must be fp32 or bf16, got {self.precision!r}")
        if self.resume and self.checkpoint_dir is None:
            raise ValueError("LoopConfig.resume needs a checkpoint_dir")


@dataclass
class LoopResult:
    steps: int
    tokens: int  # input tokens, all ranks (x.numel() per micro-batch, times the ranks)
    train_loss: float  # mean over the last logged interval (nan when nothing ran)
    val_loss: float | None  # from the last evaluation
    wall_time_s: float  # across all sessions of a resumed run
    checkpoint: Path | None  # the last one written or resumed from


class TrainingDiverged(RuntimeError):
    """The loss or gradient norm became NaN or infinite."""


def lm_loss(model: nn.Module, batch: Batch) -> Tensor:
    """Next-token cross-entropy of ``model(x)`` against ``y``; with a third ``mask``
    element only where it is nonzero (SFT: response tokens)."""
    x, y, *mask = batch
    return cross_entropy(model(x), y, *mask)


def fused_lm_loss(model: nn.Module, batch: Batch) -> Tensor:
    """`lm_loss` with the LM head and the cross-entropy as one op,
    ``linear_cross_entropy(model.features(x), model.lm_head.weight, y)``: the logits are
    never kept for backward. The same loss up to rounding. A batch with a ``mask`` falls
    back to `lm_loss` (the fused op has no mask), so its masked mean is exactly
    `lm_loss`'s. ``model`` must expose ``features`` and ``lm_head`` (a `TransformerLM`,
    not a wrapper such as DDP's, whose forward hooks ``features`` would bypass)."""
    x, y, *mask = batch
    if mask:
        return lm_loss(model, batch)
    if not (callable(getattr(model, "features", None)) and hasattr(model, "lm_head")):
        raise TypeError(
            "fused_lm_loss needs a model with features(x) and lm_head.weight (a "
            f"TransformerLM), got a {type(model).__name__}"
        )
    return linear_cross_entropy(model.features(x), model.lm_head.weight, y)


class TrainLoop:
    def __init__(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer | Callable[[nn.Module], torch.optim.Optimizer],
        batches: Iterable[Batch],
        config: LoopConfig,
        *,
        loss_fn: Callable[[nn.Module, Batch], Tensor] = lm_loss,
        lr_schedule: Callable[[int], float] | None = None,
        evaluate: Callable[[nn.Module], float] | None = None,
        wrap: Callable[[nn.Module], nn.Module] | None = None,
        on_log: Callable[[dict[str, Any]], None] | None = None,
        on_phase: Callable[[str], None] | None = None,
        sync_gradients: Callable[[], None] | None = None,
    ):
        """``optimizer``: an optimizer of ``model``'s parameters, or a function that
        builds one from the wrapped model (needed when ``wrap`` replaces the parameters,
        as FSDP does). ``loss_fn(model, batch)`` returns the mean loss of a micro-batch.
        ``lr_schedule(step)`` sets every group's lr before step ``step`` (0-based).
        ``evaluate(model)`` runs in eval mode, under no_grad and the autocast, and
        returns the validation loss. ``wrap(model)`` runs after any checkpoint was
        loaded into ``model``. ``on_phase(name)`` is called at "start", after
        "forward_backward", "sync" and "optimizer" in every step (benchmarks time
        them). ``sync_gradients()`` runs after the last backward of a step; default:
        the wrapped model's ``finish_gradient_synchronization``, if it has one (and its
        ``on_train_batch_start`` before each step, if it has one)."""
        self.model, self.config = model, config
        self._optimizer_arg, self._wrap = optimizer, wrap
        self.batches: Iterator[Batch] = iter(batches)
        self._batch_source = batches
        self.loss_fn, self.lr_schedule, self.evaluate = loss_fn, lr_schedule, evaluate
        self.on_log, self.on_phase, self._sync_arg = on_log, on_phase, sync_gradients
        self.device: torch.device | None = None  # the wrapped model's, after `start`
        self.rank = dist.get_rank() if dist.is_initialized() else 0
        self.world = dist.get_world_size() if dist.is_initialized() else 1
        self.checkpoints = CheckpointDir(config.checkpoint_dir) if config.checkpoint_dir else None
        self.step = self.tokens = 0
        self.train_model: nn.Module | None = None  # the wrapped model, after `start`
        self.optimizer: torch.optim.Optimizer | None = None
        self.last_checkpoint: Path | None = None
        self._wall_before = 0.0  # seconds of training in earlier sessions of the run
        self._session_start: float | None = None  # perf_counter() when `run` began

    # ---- the step ----------------------------------------------------------------------

    def train_step(self) -> tuple[Tensor, Tensor]:
        """One optimizer step over ``grad_accum_steps`` micro-batches; returns the mean
        loss and the gradient norm before clipping, as device tensors (no host sync)."""
        self._phase("start")
        self._before_step()
        accum, losses = self.config.grad_accum_steps, []
        for i in range(accum):
            batch = next(self.batches)
            self.tokens += batch[0].numel() * self.world  # every rank: an equal batch
            # earlier micro-batches only accumulate; the wrapper syncs after the last one
            with self._no_sync(i < accum - 1):
                with self._autocast():
                    loss = self.loss_fn(self.train_model, batch)
                # each micro-batch counts 1/accum, so the sum is the full batch's mean
                (loss / accum).backward()
            losses.append(loss.detach())
        self._phase("forward_backward")
        self.sync_gradients()
        self._phase("sync")
        max_norm = self.config.grad_clip if self.config.grad_clip > 0 else math.inf
        grad_norm = gradient_clipping(self.train_model.parameters(), max_norm)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self._phase("optimizer")
        return torch.stack(losses).mean(), grad_norm

    # ---- the loop ----------------------------------------------------------------------

    def run(self) -> LoopResult:
        """Train from the current step to ``max_steps`` (calls `start` first if needed)."""
        if self.train_model is None:
            self.start()
        cfg, row, val_loss = self.config, {}, None
        pending: list[tuple[Tensor, Tensor]] = []  # (loss, grad norm) since the last row
        self._session_start = time.perf_counter()
        interval_start, interval_tokens = time.perf_counter(), self.tokens
        with deferred_interrupt() as stop_signal:
            while self.step < cfg.max_steps:
                lr = self._set_lr()
                pending.append(self.train_step())
                self.step += 1
                last = self.step == cfg.max_steps
                logged = last or self.step % cfg.log_every == 0
                signum = self._agree_on_stop(stop_signal.signum, logged)
                save = self.checkpoints is not None and (
                    signum is not None or last or _every(self.step, cfg.checkpoint_every)
                )
                evaluate = self.evaluate is not None and (last or _every(self.step, cfg.eval_every))
                if not (save or evaluate or logged or signum is not None):
                    continue
                row = self._row(pending, lr, interval_start, interval_tokens)
                pending = []
                if evaluate:
                    val_loss = row["val_loss"] = self._evaluate()
                if self.on_log is not None:
                    self.on_log(row)
                if save:
                    self.save()
                if signum is not None:
                    raise Interrupted(signum, f"stopped at step {self.step}")
                interval_start, interval_tokens = time.perf_counter(), self.tokens
        return LoopResult(
            steps=self.step,
            tokens=self.tokens,
            train_loss=row.get("train_loss", math.nan),
            val_loss=val_loss,
            wall_time_s=self.wall_time(),
            checkpoint=self.last_checkpoint,
        )

    # ---- setup -------------------------------------------------------------------------

    def start(self) -> int:
        """Restore (``resume``) or initialise (``init_from``) the model, wrap it, build the
        optimizer and restore its state; return the step training continues from.
        Raises FileExistsError when not resuming into a folder that holds checkpoints."""
        cfg, payload = self.config, None
        if self.checkpoints is not None:
            if cfg.resume:
                payload = self._load_latest()
            elif self.checkpoints.all():
                raise FileExistsError(
                    f"{self.checkpoints.path} already holds checkpoints; resume the run "
                    "or write to another folder"
                )
        if payload is None and cfg.init_from is not None:
            restore_checkpoint(_read_checkpoint(_checkpoint_file(cfg.init_from)), self.model)
        if payload is not None:
            restore_checkpoint(payload, self.model)
        self.train_model = self._wrap(self.model) if self._wrap else self.model
        self.device = next(self.train_model.parameters()).device
        self.optimizer = (
            self._optimizer_arg
            if isinstance(self._optimizer_arg, torch.optim.Optimizer)
            else self._optimizer_arg(self.train_model)
        )
        # the course's data-parallel interface: both optional on a wrapper
        self._before_step = getattr(self.train_model, "on_train_batch_start", lambda: None)
        self.sync_gradients = self._sync_arg or getattr(
            self.train_model, "finish_gradient_synchronization", lambda: None
        )
        if payload is not None:
            self.optimizer.load_state_dict(payload["optimizer"])
            self._restore_loop_state(payload["extra"]["loop"], payload["iteration"])
        return self.step

    def _load_latest(self) -> dict[str, Any] | None:
        """Rank 0 finds the newest checkpoint that loads (setting bad ones aside);
        the other ranks read the same file. A folder whose checkpoints all fail to load
        is refused: starting over at step 0 would not be the run that was resumed."""
        found, had_any = None, False
        if self.rank == 0:
            self.checkpoints.remove_orphans()
            had_any = bool(self.checkpoints.all())
            found = self.checkpoints.load_latest()
        path, had_any = _broadcast_object(
            (None if found is None else found[0], had_any), self.world
        )
        self.last_checkpoint = path
        if path is None:
            if had_any:
                raise InputError(
                    f"{self.checkpoints.path}: no checkpoint loads (each was moved aside as "
                    "*.corrupt); start the run over in another folder"
                )
            return None
        return found[1] if self.rank == 0 else _read_checkpoint(path)

    def save(self) -> Path | None:
        """Checkpoint the current step (collective: every rank must call it)."""
        payload = checkpoint_payload(
            self.model, self.optimizer, self.step, {"loop": self._loop_state()}
        )
        if self.rank == 0:
            self.last_checkpoint = self.checkpoints.save(
                self.step, payload, self.config.keep_checkpoints
            )
        if self.world > 1:
            dist.barrier()
        return self.last_checkpoint

    def wall_time(self) -> float:
        """Seconds of training across every session of the run."""
        start = self._session_start
        return self._wall_before + (0.0 if start is None else time.perf_counter() - start)

    # ---- helpers -----------------------------------------------------------------------

    def _phase(self, name: str) -> None:
        if self.on_phase is not None:
            self.on_phase(name)

    def _no_sync(self, accumulate_only: bool):
        no_sync = getattr(self.train_model, "no_sync", None)
        return no_sync() if accumulate_only and no_sync is not None else contextlib.nullcontext()

    def _autocast(self):
        if self.config.precision == "bf16":
            return torch.autocast(self.device.type, torch.bfloat16)
        return contextlib.nullcontext()

    def _set_lr(self) -> float:
        if self.lr_schedule is not None:
            lr = self.lr_schedule(self.step)
            for group in self.optimizer.param_groups:
                group["lr"] = lr
        return self.optimizer.param_groups[0]["lr"]

    def _row(self, pending, lr, interval_start, interval_tokens) -> dict[str, Any]:
        """The logged row of the steps since the last one. The loop's only host-device
        sync happens here: the losses are averaged over ranks, checked and averaged."""
        losses, norms = (torch.stack(ts) for ts in zip(*pending, strict=True))
        if self.world > 1:
            dist.all_reduce(losses)
            losses /= self.world
        losses, norms = losses.cpu(), norms.cpu()
        self._check_finite(losses, norms, lr)
        seconds = max(time.perf_counter() - interval_start, 1e-9)
        return dict(
            step=self.step,
            tokens=self.tokens,
            train_loss=losses.mean().item(),
            val_loss=None,
            lr=lr,
            grad_norm=norms.mean().item(),
            tokens_per_s=(self.tokens - interval_tokens) / seconds,
            wall_time_s=self.wall_time(),
        )

    @torch.no_grad()
    def _evaluate(self) -> float:
        self.train_model.eval()
        try:
            with self._autocast():
                return float(self.evaluate(self.train_model))
        finally:
            self.train_model.train()

    def _check_finite(self, losses: Tensor, norms: Tensor, lr: float) -> None:
        bad = ~(torch.isfinite(losses) & torch.isfinite(norms))
        if not bad.any():
            return
        i = int(bad.nonzero()[0])
        first = self.step - len(losses) + 1 + i
        kept = (
            f"the last good checkpoint is {self.last_checkpoint}"
            if self.last_checkpoint
            else "no checkpoint was written"
        )
        raise TrainingDiverged(
            f"training diverged at step {first}: loss {losses[i].item()}, gradient norm "
            f"{norms[i].item()} (lr {lr:.3g}). Stopped; {kept}. Try a lower lr, more warmup "
            "or a smaller grad_clip."
        )

    def _agree_on_stop(self, signum: int | None, logged: bool) -> int | None:
        """Single process: the signal, at once. Distributed: at logged rows, every rank
        learns whether any rank got one (ranks must stop after the same step)."""
        if self.world == 1:
            return signum
        if not logged:
            return None
        flag = torch.tensor([signum or 0], device=self.device)
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        return int(flag.item()) or None

    def _loop_state(self) -> dict[str, Any]:
        """This run's position, every rank's RNG and batch-iterator state (collective)."""
        mine = {
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "batches": _state_dict(self._batch_source),
        }
        ranks = [mine]
        if self.world > 1:
            ranks = [None] * self.world
            dist.all_gather_object(ranks, mine)
        return {"tokens": self.tokens, "wall_time_s": self.wall_time(), "ranks": ranks}

    def _restore_loop_state(self, state: dict[str, Any], step: int) -> None:
        if len(state["ranks"]) != self.world:
            raise ValueError(
                f"the checkpoint was written by {len(state['ranks'])} ranks, this run has "
                f"{self.world}: exact resume needs the same number of ranks"
            )
        mine = state["ranks"][self.rank]
        self.step, self.tokens, self._wall_before = step, state["tokens"], state["wall_time_s"]
        torch.set_rng_state(mine["torch_rng"])
        if mine["cuda_rng"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(mine["cuda_rng"])
        if mine["batches"] is not None:
            self._batch_source.load_state_dict(mine["batches"])


def _every(step: int, n: int) -> bool:
    return n > 0 and step % n == 0


def _state_dict(batches: Any) -> Any:
    state_dict = getattr(batches, "state_dict", None)
    return state_dict() if state_dict is not None else None


def _broadcast_object(obj: Any, world: int) -> Any:
    if world == 1:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def _checkpoint_file(source: str | Path) -> Path:
    """A checkpoint file, or the newest checkpoint of a checkpoint folder or run folder."""
    source = Path(source)
    if source.is_file():
        return source
    for folder in (source, source / "checkpoints"):
        latest = CheckpointDir(folder).latest()
        if latest is not None:
            return latest
    raise FileNotFoundError(f"init_from: no checkpoint at {source}")
