"""A training run's folder: metrics JSONL, logged generations, curves as PNG.

out/metrics.jsonl       one row per step (losses, rewards, evaluation, timings)
out/generations.jsonl   sampled responses with their scores, at each evaluation
out/curves.png          the rows' curves
out/checkpoints/        the training core's checkpoints (resume with --resume)
out/final/              the trained policy, loadable with --model
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from cs336_common.checks import parse_jsonl
from cs336_common.io import write_text_atomic


class RunLog:
    """Appends rows; on resume it first drops rows past the checkpoint's step, so the
    file reads as if the run had never stopped."""

    def __init__(self, out: Path, resume_step: int = 0):
        self.out = out
        out.mkdir(parents=True, exist_ok=True)
        self.metrics, self.generations = out / "metrics.jsonl", out / "generations.jsonl"
        for path in (self.metrics, self.generations):
            _truncate_after(path, resume_step)

    def row(self, row: dict[str, Any]) -> None:
        _append(self.metrics, row)

    def samples(self, step: int, records: list[dict], n: int = 8) -> None:
        """Up to ``n`` correct and ``n`` incorrect records, tagged with the step."""
        right = [r for r in records if r.get("correct")][:n]
        wrong = [r for r in records if not r.get("correct")][:n]
        for r in right + wrong:
            _append(self.generations, {"step": step, **r})

    def rows(self) -> list[dict]:
        return _read_rows(self.metrics)

    def plot(self, keys: list[str], title: str) -> Path:
        return plot_curves(self.rows(), keys, self.out / "curves.png", title)


def _append(path: Path, row: dict) -> None:
    with path.open("a", encoding="utf-8") as f:
        f.write(json.dumps(row, ensure_ascii=False) + "\n")


def _truncate_after(path: Path, step: int) -> None:
    if not path.is_file():
        return
    keep = [row for row in _read_rows(path) if row.get("step", 0) <= step]
    write_text_atomic(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in keep))


def _read_rows(path: Path) -> list[dict]:
    """The rows of a log ([] before the first); a damaged file is an `InputError`
    naming it and the line."""
    return parse_jsonl(path.read_bytes(), str(path)) if path.is_file() else []


def plot_curves(rows: list[dict], keys: list[str], png: Path, title: str) -> Path:
    """One panel per key present in ``rows`` (x: step); NaN/None points are skipped."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = [k for k in keys if any(_finite(r.get(k)) for r in rows)]
    fig, axes = plt.subplots(1, max(len(keys), 1), figsize=(4 * max(len(keys), 1), 3.2))
    axes = [axes] if len(keys) <= 1 else list(axes)
    for ax, key in zip(axes, keys, strict=False):
        pts = [(r["step"], r[key]) for r in rows if _finite(r.get(key))]
        ax.plot(*zip(*pts, strict=True), marker="." if len(pts) < 40 else None)
        ax.set_title(key)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    from cs336_common.io import atomic_path

    with atomic_path(png) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    return png


def _finite(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
