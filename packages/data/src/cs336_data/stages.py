"""Stages over many shards: plan the tasks, run them through the executor, add up stats.

Every stage reads shards from its inputs and writes `<out_dir>/<shard>.jsonl.gz`; its
intermediate files live in `<out_dir>/_work` and submitit's logs in `<out_dir>/_logs`."""

from __future__ import annotations

import glob
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from cs336_data.documents import SUFFIX, shard_name
from cs336_data.executor import ExecutorConfig, run_tasks
from cs336_data.shards import (
    FilterTask,
    input_kind,
    load_stats,
    run_filter_task,
    stats_path,
    task_done,
)
from cs336_data.stats import StageStats

REPORT_FILES = ("report.json", "removed_samples.jsonl")
OPTIONS_FILE = "options.json"


def expand_inputs(patterns: list[str]) -> list[Path]:
    """Files named or matched by glob patterns (directories: every known file inside), in a
    stable order; a pattern that matches nothing is an error."""
    paths: list[Path] = []
    for pattern in patterns:
        if Path(pattern).is_dir():
            found = sorted(p for p in Path(pattern).iterdir() if p.is_file() and _known(p))
        else:
            found = sorted(Path(p) for p in glob.glob(pattern) if Path(p).is_file())
        if not found:
            raise FileNotFoundError(f"input {pattern}: no such file (or no match)")
        paths += found
    dup = [n for n, k in Counter(shard_name(p) for p in paths).items() if k > 1]
    if dup:
        raise ValueError(
            f"inputs with the same shard name {sorted(dup)[0]!r}: rename or split them"
        )
    for p in paths:
        input_kind(p)
    return paths


def _known(p: Path) -> bool:
    """A file of a directory input: a known kind, not a stage's report or temporary file."""
    if p.name.startswith(".") or p.name in REPORT_FILES or p.name.endswith(".stats.json"):
        return False
    try:
        input_kind(p)
        return True
    except ValueError:
        return False


def check_output_dir(out_dir: Path, inputs: list[Path], flag: str = "--out") -> None:
    """Before any work: a folder we can create or write, that holds none of the inputs
    (a shard written there could replace one)."""
    from cs336_common.checks import check_output
    from cs336_common.errors import UserError

    check_output(out_dir, inputs=inputs, flag=flag, directory=True)
    out = out_dir.resolve()
    for p in inputs:
        if p.resolve().parent == out:
            raise UserError(f"{flag} {out_dir} holds input {p}; use another folder")


def check_same_options(out_dir: Path, options: dict, flag: str = "--out") -> None:
    """A re-run skips the shards already finished, so it must run with the options that
    made them: others would mix two runs' results. The first run records its options in
    `out_dir/options.json`; a re-run with others is refused, naming the first difference."""
    import json

    from cs336_common.checks import read_json
    from cs336_common.errors import UserError
    from cs336_common.io import write_text_atomic

    options = json.loads(json.dumps(options, default=str))  # as it reads back
    path = out_dir / OPTIONS_FILE
    if not path.exists():
        write_text_atomic(path, json.dumps(options, indent=1, sort_keys=True))
        return
    old = read_json(path, "run options")
    if not isinstance(old, dict):
        raise UserError(f"{path}: expected a JSON object of options; move the folder away")
    if old != options:
        key = next(k for k in sorted(set(old) | set(options)) if old.get(k) != options.get(k))
        raise UserError(
            f"{flag} {out_dir} holds results made with other options ({key}: "
            f"{old.get(key)!r} then, {options.get(key)!r} now); use another folder or delete it"
        )


def outputs(inputs: list[Path], out_dir: Path) -> list[Path]:
    return [out_dir / f"{shard_name(p)}{SUFFIX}" for p in inputs]


def merged_stats(tasks) -> dict[str, StageStats]:
    total: dict[str, StageStats] = {}
    for task in tasks:
        for name, st in load_stats(task.output).items():
            total.setdefault(name, StageStats()).add(st)
    return total


def lines_work(out_dir: Path, shard: Path) -> Path:
    return out_dir / "_work" / f"{shard_name(shard)}.counts.npz"


def minhash_work(out_dir: Path, shard: Path) -> Path:
    return out_dir / "_work" / f"{shard_name(shard)}.minhash.npz"


def tokens_work(token_file: Path, shard: Path) -> Path:
    return token_file.parent / "_work_tokens" / f"{shard_name(shard)}.bin"


def filter_stage(
    inputs: list[Path],
    out_dir: Path,
    steps: list,
    cfg: ExecutorConfig,
    max_bytes: int = 10_000_000,
    collect: Callable[[Path], tuple] | None = None,
) -> dict[str, StageStats]:
    """Extraction (raw inputs) and per-document steps, one streaming pass per shard;
    `collect(output shard)` names what to gather for the next stage (collectors.py)."""
    from cs336_data.steps import STEPS

    for name, opts in steps:
        STEPS[name](**opts)  # bad options or a missing model fail now, not in every worker
    tasks = [
        FilterTask(str(i), str(o), steps, max_bytes, collect(o) if collect else None)
        for i, o in zip(inputs, outputs(inputs, out_dir), strict=True)
    ]
    run_tasks(run_filter_task, tasks, cfg, out_dir / "_logs", "filter", task_done)
    return merged_stats(tasks)


def exact_dedup_stage(inputs: list[Path], out_dir: Path, cfg: ExecutorConfig, collect=None):
    from cs336_data import dedup_stage as d

    tasks = _dedup_tasks(inputs, out_dir, lines_work, "duplicate_lines.npz", {}, collect)
    _global(tasks, cfg, out_dir, "lines", "count lines",
            lambda: d.merge_line_counts(tasks, Path(tasks[0].shared)))  # fmt: skip
    run_tasks(d.rewrite_lines_task, tasks, cfg, out_dir / "_logs", "drop lines", task_done)
    return merged_stats(tasks)


def minhash_stage(
    inputs: list[Path], out_dir: Path, cfg: ExecutorConfig, params: dict, collect=None
):
    from cs336_data import dedup_stage as d

    tasks = _dedup_tasks(inputs, out_dir, minhash_work, "clusters.npz", params, collect)
    _global(tasks, cfg, out_dir, "minhash", "minhash",
            lambda: d.cluster_signatures(tasks, Path(tasks[0].shared), params))  # fmt: skip
    run_tasks(d.drop_duplicates_task, tasks, cfg, out_dir / "_logs", "drop dups", task_done)
    return merged_stats(tasks)


def _dedup_tasks(inputs, out_dir: Path, work, shared: str, params: dict, collect):
    from cs336_data.dedup_stage import DedupTask

    tasks = []
    for s, (i, o) in enumerate(zip(inputs, outputs(inputs, out_dir), strict=True)):
        p = {**params, "shard_index": s}
        c = collect(o) if collect else None
        tasks.append(
            DedupTask(str(i), str(o), str(work(out_dir, i)), str(out_dir / "_work" / shared), p, c)
        )
    return tasks


def _global(tasks, cfg, out_dir: Path, kind: str, desc: str, merge) -> None:
    """Per-shard pass (skipped for shards whose file the previous stage collected), then
    the global step, redone whenever a per-shard file is newer than its result; outputs
    made from an older result are then redone too."""
    from cs336_data.collectors import collect_task
    from cs336_data.dedup_stage import first_pass, work_done

    if not tasks:
        return
    first = [first_pass(t, kind) for t in tasks]
    run_tasks(collect_task, first, cfg, out_dir / "_logs", desc, work_done)
    shared = Path(tasks[0].shared)
    newest = max(Path(t.work).stat().st_mtime_ns for t in tasks)
    if not shared.is_file() or shared.stat().st_mtime_ns < newest:
        merge()
        for t in tasks:
            stats_path(t.output).unlink(missing_ok=True)


def tokenize_stage(inputs: list[Path], out: Path, cfg: ExecutorConfig, tokenizer: str) -> int:
    """Tokenize every shard (unless collected already), then concatenate into `out`;
    returns the number of tokens."""
    from cs336_data.collectors import collect_task
    from cs336_data.tokenize_stage import TokenizeTask, concatenate, tokens_done

    tasks = []
    for i in inputs:
        work = tokens_work(out, i)
        tasks.append(
            TokenizeTask(str(i), str(work), ("tokens", str(work), {"tokenizer": tokenizer}))
        )
    run_tasks(collect_task, tasks, cfg, out.parent / "_logs", "tokenize", tokens_done)
    return concatenate([Path(t.output) for t in tasks], out, tokenizer)
