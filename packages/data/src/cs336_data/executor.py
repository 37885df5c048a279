"""Running shard tasks: in this process, on N local worker processes, or on Slurm, through
submitit. A task whose output is already complete is skipped, so re-running a killed
command resumes it; outputs are renamed into place whole, so nothing is duplicated."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from cs336_common.errors import UserError
from cs336_common.io import stderr_to
from cs336_common.signals import terminate_as_interrupt

EXECUTORS = ("local", "slurm", "inline")


@dataclass
class ExecutorConfig:
    kind: str = "local"  # local: N worker processes; slurm: N Slurm jobs; inline: this process
    workers: int = 2
    partition: str | None = None
    time_min: int = 240
    mem_gb: float = 8.0
    cpus_per_task: int = 1

    def check(self) -> None:
        if self.kind not in EXECUTORS:
            raise ValueError(f"executor {self.kind!r}: expected one of {', '.join(EXECUTORS)}")
        for name in ("workers", "time_min", "mem_gb", "cpus_per_task"):
            if not getattr(self, name) > 0:
                raise ValueError(f"[executor] {name} must be > 0, got {getattr(self, name)}")


def add_executor_arguments(parser) -> None:
    from cs336_common.cli import positive_float, positive_int

    g = parser.add_argument_group("execution")
    g.add_argument(
        "--executor",
        choices=EXECUTORS,
        default="local",
        help="local worker processes (default), Slurm jobs, or inline (this process)",
    )
    g.add_argument(
        "--workers", type=positive_int, default=2, help="parallel workers / Slurm jobs (2)"
    )
    g.add_argument("--partition", help="Slurm partition")
    g.add_argument(
        "--time-min", type=positive_int, default=240, help="Slurm time limit per job (240)"
    )
    g.add_argument("--mem-gb", type=positive_float, default=8.0, help="Slurm memory per job (8)")
    g.add_argument("--cpus-per-task", type=positive_int, default=1, help="Slurm CPUs per job (1)")  # fmt: skip


def executor_config(args) -> ExecutorConfig:
    cfg = ExecutorConfig(args.executor, args.workers, args.partition, args.time_min,
                         args.mem_gb, args.cpus_per_task)  # fmt: skip
    cfg.check()
    return cfg


class ShardFailures(UserError):
    """Shards whose processing raised; the message names them and the first errors."""


def _run_chunk(fn: Callable, tasks: Sequence) -> list[tuple[list[str], str]]:
    """One worker: its tasks in turn. A task that fails is reported (as [its name], why)
    and the rest go on."""
    failures = []
    for task in tasks:
        try:
            fn(task)
        except Exception as e:  # a bad shard must not stop the others
            failures.append(([task.name], f"{type(e).__name__}: {str(e).splitlines()[0][:200]}"))
    return failures


def run_tasks(
    fn: Callable,
    tasks: Sequence,
    cfg: ExecutorConfig,
    logs: Path,
    desc: str,
    done: Callable[[object], bool],
) -> int:
    """Run `fn(task)` for every task not `done`; returns how many were skipped as done.
    Raises ShardFailures naming the tasks that failed (after all others have run)."""
    from tqdm import tqdm

    todo = [t for t in tasks if not done(t)]
    skipped = len(tasks) - len(todo)
    # SIGTERM cancels the jobs like Ctrl-C: the CLI runner does that, here library callers too
    with (
        terminate_as_interrupt(),
        tqdm(total=len(tasks), initial=skipped, desc=desc, unit="shard", leave=False) as bar,
    ):
        if cfg.kind == "inline":
            failures = []
            for task in todo:
                failures += _run_chunk(fn, [task])
                bar.update()
        else:
            failures = _run_submitit(fn, todo, cfg, logs, bar, done, desc)
    if failures:
        failed = sum(len(names) for names, _ in failures)
        named = [f"{', '.join(names)}: {why}" for names, why in failures[:3]]
        raise ShardFailures(f"{failed} shard(s) failed: " + "; ".join(named))
    return skipped


def _run_submitit(fn, todo, cfg: ExecutorConfig, logs: Path, bar, done, desc) -> list:
    import submitit

    if not todo:
        return []
    if cfg.kind == "slurm":
        ex = submitit.AutoExecutor(folder=logs, cluster="slurm")
        ex.update_parameters(slurm_partition=cfg.partition, timeout_min=cfg.time_min,
                             mem_gb=cfg.mem_gb, cpus_per_task=cfg.cpus_per_task,
                             name="cs336-data-" + desc.replace(" ", "-"))  # fmt: skip
    else:
        ex = submitit.LocalExecutor(folder=logs)
        ex.update_parameters(timeout_min=cfg.time_min)
    chunks = [todo[w :: cfg.workers] for w in range(min(cfg.workers, len(todo)))]
    with stderr_to(logs / "controllers.err"):
        jobs = [ex.submit(_run_chunk, fn, chunk) for chunk in chunks]
    try:
        while not all(job.done() for job in jobs):
            bar.n = bar.initial + sum(map(done, todo))
            bar.refresh()
            time.sleep(0.2)
    except KeyboardInterrupt:
        for job in jobs:
            job.cancel(check=False)
        raise
    failures = []
    for job, chunk in zip(jobs, chunks, strict=True):
        try:
            failures += job.result()
        except Exception:  # the job itself died (cancelled, killed, out of memory, timeout)
            why = f"job {job.job_id} ended {job.state} without a result (logs: {logs})"
            failures.append(([t.name for t in chunk if not done(t)], why))
    return failures
