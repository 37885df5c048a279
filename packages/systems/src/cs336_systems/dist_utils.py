"""Process-group plumbing: start N ranks on one machine (tests, benchmarks) or join a
`torchrun` launch, and always tear the group down.

`spawn(fn, world_size, *args)` runs ``fn(rank, world_size, *args)`` in ``world_size``
fresh processes that share a process group on a free localhost port; it never hangs:
past ``timeout_s`` every rank is killed and a `TimeoutError` names the function.
`run_collective(measure, args, ...)` runs a collective measurement either way (under
`torchrun` or on spawned ranks) and hands back rank 0's rows.
"""

from __future__ import annotations

import contextlib
import datetime
import faulthandler
import gc
import json
import os
import socket
import tempfile
import time
from collections.abc import Callable, Iterator
from typing import Any

import torch
import torch.distributed as dist
import torch.multiprocessing as mp


def free_port() -> int:
    """A TCP port that was free a moment ago (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def default_backend() -> str:
    return "nccl" if torch.cuda.is_available() else "gloo"


def device_for(backend: str, local_rank: int) -> torch.device:
    """NCCL ranks own one GPU each; gloo ranks compute on the CPU."""
    if backend == "nccl":
        torch.cuda.set_device(local_rank)
        return torch.device("cuda", local_rank)
    return torch.device("cpu")


def current_device() -> torch.device:
    """This rank's device in the initialised group: its GPU under NCCL, else the CPU."""
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


@contextlib.contextmanager
def process_group(
    rank: int, world_size: int, backend: str, port: int, timeout_s: float = 120.0
) -> Iterator[torch.device]:
    """Join a localhost group; yield this rank's device; destroy the group on exit."""
    device = device_for(backend, rank)
    dist.init_process_group(
        backend,
        init_method=f"tcp://127.0.0.1:{port}",
        rank=rank,
        world_size=world_size,
        timeout=datetime.timedelta(seconds=timeout_s),
        **({"device_id": device} if backend == "nccl" else {}),
    )
    with _torn_down():
        yield device


@contextlib.contextmanager
def torchrun_group(backend: str | None = None) -> Iterator[torch.device]:
    """Join the group `torchrun` describes in RANK/WORLD_SIZE/LOCAL_RANK/MASTER_*."""
    missing = [
        k for k in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT") if k not in os.environ
    ]
    if missing:
        raise RuntimeError(f"not launched by torchrun: environment lacks {', '.join(missing)}")
    backend = backend or default_backend()
    device = device_for(backend, int(os.environ.get("LOCAL_RANK", 0)))
    dist.init_process_group(backend, **({"device_id": device} if backend == "nccl" else {}))
    with _torn_down():
        yield device


@contextlib.contextmanager
def _torn_down() -> Iterator[None]:
    """Run the body in the initialised group, then always destroy the group.

    On success the ranks meet first: teardown while a peer still has traffic in flight
    can abort gloo's threads ("terminate called without an active exception"). Then
    ``gc.collect()`` frees cyclic garbage still holding gloo work objects or tensors
    while the group and the interpreter are alive, instead of at interpreter exit,
    where their destructors can abort the process the same way.
    """
    try:
        yield
        dist.barrier()
        gc.collect()
    finally:
        dist.destroy_process_group()


def under_torchrun() -> bool:
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ


def check_backend(backend: str, world_size: int) -> None:
    """Before any rank starts: NCCL ranks need a GPU each (``world_size`` of them, or,
    under torchrun, the GPU of this process's LOCAL_RANK)."""
    from cs336_common.errors import UserError

    if backend != "nccl":
        return
    gpus = torch.cuda.device_count()
    need = int(os.environ.get("LOCAL_RANK", 0)) + 1 if under_torchrun() else world_size
    if gpus < need:
        raise UserError(f"--backend nccl needs one GPU per rank; this machine has {gpus}")


def run_collective(
    measure: Callable[[Any], list[dict]],
    args: Any,
    world_size: int,
    backend: str,
    timeout_s: float,
) -> list[dict] | None:
    """Run ``measure(args)`` on every rank of one group and return rank 0's rows.

    Under `torchrun` this process joins the group torchrun made (``world_size`` is then
    torchrun's) and gets None on ranks other than 0. Otherwise ``world_size`` ranks are
    spawned with ``backend`` (killed after ``timeout_s``: a `UserError` naming --timeout)
    and rank 0's rows come back through a JSON file, so ``measure`` must be a picklable
    module-level function and its rows JSON-serialisable.
    """
    from cs336_common.errors import UserError

    if under_torchrun():
        with torchrun_group(backend):
            rows = measure(args)
            rank = dist.get_rank()
        return rows if rank == 0 else None
    with tempfile.TemporaryDirectory() as tmp:
        result = os.path.join(tmp, "rows.json")
        try:
            spawn(
                _collective_worker,
                world_size,
                measure,
                args,
                result,
                backend=backend,
                timeout_s=timeout_s,
            )
        except TimeoutError:
            raise UserError(
                f"{measure.__name__} on {world_size} {backend} ranks did not finish within "
                f"--timeout {timeout_s:g} s; killed every rank"
            ) from None
        with open(result) as f:
            return json.load(f)


def _collective_worker(rank: int, world_size: int, measure, args, result_path: str) -> None:
    rows = measure(args)
    if rank == 0:
        with open(result_path, "w") as f:
            json.dump(rows, f)


def spawn(
    fn: Callable[..., Any],
    world_size: int,
    *args: Any,
    backend: str = "gloo",
    timeout_s: float = 120.0,
) -> None:
    """Run ``fn(rank, world_size, *args)`` on ``world_size`` ranks; re-raise the first
    failure with its traceback; kill every rank after ``timeout_s`` seconds."""
    port = free_port()
    ctx = mp.start_processes(
        _entry,
        args=(world_size, backend, port, timeout_s, fn, args),
        nprocs=world_size,
        join=False,
        start_method="spawn",
    )
    deadline = time.monotonic() + timeout_s
    try:
        while not ctx.join(timeout=max(0.0, min(1.0, deadline - time.monotonic()))):
            if time.monotonic() >= deadline:
                raise TimeoutError(
                    f"{fn.__qualname__} on {world_size} ranks ({backend}) did not finish "
                    f"within {timeout_s:.0f} s; killed every rank"
                )
    finally:
        for p in ctx.processes:
            if p.is_alive():
                p.kill()
                p.join()
        for path in ctx.error_files:  # a rank stopped by Ctrl-C leaves its traceback there
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)


def _entry(rank, world_size, backend, port, timeout_s, fn, args):
    import threading

    from tqdm import tqdm

    faulthandler.enable()  # a rank killed by a signal still prints where it was
    # tqdm's default lock is a named semaphore shared across processes: `spawn` kills
    # ranks on Ctrl-C or SIGTERM, and the semaphore of a killed rank is left for
    # multiprocessing's resource tracker, which warns about it at exit
    tqdm.set_lock(threading.RLock())
    with process_group(rank, world_size, backend, port, timeout_s):
        fn(rank, world_size, *args)
