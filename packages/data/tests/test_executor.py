from dataclasses import dataclass
from typing import ClassVar

import pytest

from cs336_data.executor import ExecutorConfig, ShardFailures, run_tasks


@dataclass
class Task:
    name: str
    out: list


def work(task: Task) -> None:
    if task.name == "bad":
        raise ValueError("broken shard\nsecond line")
    task.out.append(task.name)


class FakeJob:
    job_id = "1"

    def __init__(self, fn, args):
        self.value = fn(*args)

    def done(self):
        return True

    def result(self):
        return self.value


class FakeSlurm:
    """Stands in for submitit.AutoExecutor: records what a Slurm submission would get."""

    seen: ClassVar[dict] = {}

    def __init__(self, folder, cluster):
        FakeSlurm.seen = {"folder": folder, "cluster": cluster, "jobs": 0}

    def update_parameters(self, **params):
        FakeSlurm.seen.update(params)

    def submit(self, fn, *args):
        FakeSlurm.seen["jobs"] += 1
        return FakeJob(fn, args)


def test_slurm_options_reach_submitit_and_tasks_are_spread(tmp_path, monkeypatch):
    import submitit

    monkeypatch.setattr(submitit, "AutoExecutor", FakeSlurm)
    out: list = []
    tasks = [Task(f"s{i}", out) for i in range(5)]
    cfg = ExecutorConfig("slurm", workers=2, partition="cpu", time_min=30, mem_gb=3.5)
    assert run_tasks(work, tasks, cfg, tmp_path / "logs", "t", lambda t: False) == 0
    assert sorted(out) == [t.name for t in tasks]
    seen = FakeSlurm.seen
    assert seen["cluster"] == "slurm" and seen["jobs"] == 2
    assert (seen["slurm_partition"], seen["timeout_min"], seen["mem_gb"]) == ("cpu", 30, 3.5)


class DeadJob(FakeJob):
    """A Slurm job killed after its first shard: no result, its state from sacct."""

    state = "CANCELLED by 0"
    finished: ClassVar[set] = set()

    def __init__(self, fn, args):
        DeadJob.finished.add(args[1][0].name)  # args: (fn, chunk)

    def result(self):
        raise RuntimeError("No output/error stream produced ! Check: 1_0_log.out")


def test_a_dead_job_names_its_unfinished_shards(tmp_path, monkeypatch):
    import submitit

    monkeypatch.setattr(submitit, "AutoExecutor", FakeSlurm)
    monkeypatch.setattr(FakeSlurm, "submit", lambda self, fn, *args: DeadJob(fn, args))
    tasks = [Task(f"s{i}", []) for i in range(5)]
    cfg = ExecutorConfig("slurm", workers=2)
    want = (  # chunks s0 s2 s4 and s1 s3; each job finished its first shard, then died
        r"^3 shard\(s\) failed: s2, s4: job 1 ended CANCELLED by 0 without a result \(logs: .*\); "
        r"s3: job 1 ended"
    )
    with pytest.raises(ShardFailures, match=want):
        run_tasks(work, tasks, cfg, tmp_path / "logs", "t", lambda t: t.name in DeadJob.finished)


def test_done_tasks_are_skipped_and_failures_named_in_one_line(tmp_path):
    out: list = []
    tasks = [Task("a", out), Task("bad", out), Task("c", out)]
    cfg = ExecutorConfig("inline")
    with pytest.raises(ShardFailures, match=r"1 shard\(s\) failed: bad: ValueError: broken shard$"):
        run_tasks(work, tasks, cfg, tmp_path, "t", lambda t: t.name == "a")
    assert out == ["c"]


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"kind": "cluster"}, "executor 'cluster'"),
        ({"workers": 0}, "workers must be > 0"),
        ({"mem_gb": 0.0}, "mem_gb must be > 0"),
        ({"time_min": -5}, "time_min must be > 0"),
    ],
)
def test_bad_executor_settings(settings, message):
    with pytest.raises(ValueError, match=message):
        ExecutorConfig(**settings).check()
