"""Peak GPU memory of the LM: a forward pass (inference) and a full training step, plus a
``torch.cuda.memory._record_memory_history`` snapshot of one training step, saved as a
``.pickle`` for https://pytorch.org/memory_viz (drag the file onto the page).

Without CUDA the phases still run (a smoke test of the code path) and memory reads "n/a".
"""

from __future__ import annotations

from pathlib import Path

import torch
from tqdm import tqdm

from cs336_common.device import resolve_device
from cs336_common.io import atomic_path
from cs336_systems.bench.harness import OOM, free_memory, run_or_oom
from cs336_systems.bench.model import ModelBenchConfig, build_model, step_functions


def _peak_mib(fn, device) -> float | str:
    """Peak allocated memory while ``fn`` runs (after one untimed call), in MiB."""
    fn()
    if device.type != "cuda":
        return "n/a"
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    fn()
    torch.cuda.synchronize(device)
    return torch.cuda.max_memory_allocated(device) / 2**20


def _snapshot(fn, path: Path) -> None:
    torch.cuda.memory._record_memory_history(max_entries=1_000_000)
    try:
        fn()
        torch.cuda.synchronize()
        with atomic_path(path) as tmp:
            torch.cuda.memory._dump_snapshot(str(tmp))
    finally:
        torch.cuda.memory._record_memory_history(enabled=None)


def bench_memory(cfg: ModelBenchConfig, out_dir: str | Path, progress: bool = True) -> list[dict]:
    device = resolve_device(cfg.device)
    rows = []
    cases = [(s, c) for s in cfg.sizes for c in cfg.context_lengths]
    for size, ctx in tqdm(cases, desc="bench memory", disable=not progress):
        row = {"size": size, "context": ctx, "dtype": cfg.dtype, "attention": cfg.attention}
        row.update(run_or_oom(lambda s=size, c=ctx: _measure(cfg, s, c, device, Path(out_dir))))
        rows.append(row)
        free_memory()
    return rows


def _measure(cfg, size, ctx, device, out_dir: Path) -> dict:
    model = build_model(cfg, size, ctx, device)
    steps = step_functions(cfg, model, ctx, device)
    result = {}
    for name in ("forward", "train step"):
        peak = run_or_oom(lambda n=name: _peak_mib(steps[n], device))
        result[f"{name} peak MiB"] = peak
    if device.type == "cuda" and result["train step peak MiB"] is not OOM:
        path = out_dir / f"memory_{size}_ctx{ctx}_{cfg.dtype}.pickle"
        _snapshot(steps["train step"], path)
        result["snapshot"] = path.name
    return result
