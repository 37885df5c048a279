"""`Runner`: moves queued runs onto submitit jobs (one per device slot) and records results."""

from __future__ import annotations

import re
import shutil
import threading
import time
from pathlib import Path

from cs336_common.io import stderr_to
from cs336_scaling.jobs import run_job
from cs336_scaling.settings import CONFIG_FIELDS, ServiceSettings
from cs336_scaling.store import Store

DIED = "the server stopped while this run was running"


class Runner:
    def __init__(self, store: Store, settings: ServiceSettings, folder: Path):
        self.store, self.settings = store, settings
        self.folder = folder
        self.executor = _executor(settings, folder)
        self.slots = _slots(settings)
        self.inflight: dict[int, tuple[object, str | None]] = {}  # run id -> (job, slot)
        self.changed = threading.Condition()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="runner", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def wake(self) -> None:
        with self.changed:
            self.changed.notify_all()

    def wait(self, run_id: int, timeout: float | None = None) -> dict:
        """Block until the run is finished or failed (or the timeout passes)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            run = self.store.get(run_id)
            if run["status"] in ("finished", "failed") or self._stop.is_set():
                return run
            if deadline is not None and time.monotonic() > deadline:
                return run
            with self.changed:
                self.changed.wait(0.25)

    def shutdown(self) -> None:
        """Cancel the jobs in flight and mark their runs failed (retry is allowed)."""
        self._stop.set()
        self.wake()
        self._thread.join(timeout=10)
        for run_id, (job, _) in list(self.inflight.items()):
            job.cancel(check=False)
            self.store.fail(run_id, DIED)
        self.inflight.clear()

    def _loop(self) -> None:
        while not self._stop.is_set():
            changed = self._reap() + self._launch()
            if changed:
                self.wake()
            with self.changed:
                self.changed.wait(0.1)

    def _reap(self) -> int:
        reaped = 0
        for run_id, (job, _) in list(self.inflight.items()):
            loss = _early_result(job)
            if loss is None and not job.done():
                continue
            del self.inflight[run_id]
            reaped += 1
            if loss is not None:
                self.store.finish(run_id, loss)
                continue
            try:
                self.store.finish(run_id, job.result())
            except Exception as e:  # the job's failure, whatever it was, is the run's
                self.store.fail(run_id, _one_line(e))
        return reaped

    def _launch(self) -> int:
        free = [s for s in self.slots if s not in {slot for _, slot in self.inflight.values()}]
        launched = 0
        for run in self.store.runs(status="queued")[: len(free)]:
            if not self.store.claim(run["id"]):
                continue
            slot = free[launched]
            config = {k: run[k] for k in CONFIG_FIELDS}
            try:
                # a cancelled local job's controller prints a traceback: into the job logs
                with stderr_to(self.folder / "controllers.err"):
                    job = self.executor.submit(run_job, config, self.settings.to_dict(), slot)
            except Exception as e:
                self.store.fail(run["id"], f"could not start the job: {_one_line(e)}")
                continue
            self.store.set_job(run["id"], str(job.job_id))
            self.inflight[run["id"]] = (job, slot)
            launched += 1
        return launched


def _early_result(job) -> float | None:
    """A job's loss as soon as submitit has written its result file (atomically, when the
    function returned), or None. `job.done()` waits for the process to exit, and a process
    that used torch and CUDA takes seconds to tear down; the slot is free already (the
    next run may start on the GPU while the last one's process exits)."""
    path = job.paths.result_pickle
    if not path.exists():
        return None
    from submitit.core.utils import pickle_load

    outcome, value = pickle_load(path)
    return float(value) if outcome == "success" else None  # a failure: job.result() says why


def _executor(settings: ServiceSettings, folder: Path):
    import submitit

    if settings.executor == "slurm":
        executor = submitit.AutoExecutor(folder=folder, cluster="slurm")
        executor.update_parameters(timeout_min=settings.timeout_min, **settings.slurm)
    else:
        executor = submitit.LocalExecutor(folder=folder)
        # submitit hides every GPU from a local job unless told: show them all, the
        # runner's slot says which one the job uses.
        executor.update_parameters(timeout_min=settings.timeout_min, gpus_per_node=_gpu_count())
    return executor


def _slots(settings: ServiceSettings) -> list[str | None]:
    """Device per concurrent run: one per visible GPU locally, else CPU (None: let the
    job pick, as on Slurm where the allocation decides)."""
    if settings.executor == "slurm":
        return [f"slurm-{i}" for i in range(settings.max_parallel or 16)]
    gpus = _gpu_count()
    n = settings.max_parallel or max(gpus, 1)
    return [f"cuda:{i % gpus}" if gpus else f"cpu-{i}" for i in range(n)]


def _gpu_count() -> int:
    # torch's import costs seconds; a machine without nvidia-smi has no CUDA GPU for it.
    if shutil.which("nvidia-smi") is None:
        return 0
    import torch

    return torch.cuda.device_count()


def _one_line(e: BaseException) -> str:
    # submitit wraps a job's exception in its traceback and log paths: keep the error line.
    lines = [line.strip() for line in str(e).strip().splitlines() if line.strip()]
    errors = [line for line in lines if re.match(r"^[\w.]+(Error|Exception|Interrupt)\b", line)]
    return (errors or lines or [type(e).__name__])[-1][:500]
