"""Learning curves of one or more runs on one figure: loss against steps (or tokens)
and against wall-clock time, train loss as a thin line, validation loss with markers."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from cs336_basics.run_dir import RunDir
from cs336_common.checks import check_output
from cs336_common.errors import InputError, UserError
from cs336_common.io import atomic_path

_NEEDED = ("step", "tokens", "wall_time_s", "train_loss")


# formats matplotlib writes without extra packages, by file suffix
FORMATS = (".png", ".pdf", ".svg", ".jpg", ".jpeg", ".webp", ".eps", ".ps", ".tif", ".tiff")


def plot_runs(
    run_dirs: Sequence[str | Path],
    out: str | Path,
    *,
    x_axis: str = "step",
    log_y: bool = False,
    title: str | None = None,
) -> Path:
    """Write a figure with two panels: loss vs ``x_axis`` ("step" or "tokens") and loss
    vs wall-clock minutes; one colour per run, labelled by its directory name. The suffix
    of ``out`` picks the format (`FORMATS`). Every run is read, and ``out`` checked,
    before anything is drawn: a run without metrics is a `UserError`."""
    if x_axis not in ("step", "tokens"):
        raise ValueError(f"x_axis must be 'step' or 'tokens', got {x_axis!r}")
    out = check_output(out, inputs=[RunDir(d).metrics for d in run_dirs], suffixes=FORMATS)
    runs = {run_dir: _read_metrics(RunDir(run_dir)) for run_dir in run_dirs}
    import matplotlib

    matplotlib.use("Agg")  # files only, no display needed
    import matplotlib.pyplot as plt

    fig, (ax_step, ax_time) = plt.subplots(1, 2, figsize=(13, 4.8), sharey=True)
    for i, (run_dir, rows) in enumerate(runs.items()):
        color = f"C{i % 10}"
        for ax, key, scale in ((ax_step, x_axis, 1), (ax_time, "wall_time_s", 1 / 60)):
            _curve(ax, rows, key, scale, color, _label(run_dir, run_dirs))
    ax_step.set_xlabel("tokens" if x_axis == "tokens" else "step")
    ax_time.set_xlabel("wall-clock time (minutes)")
    ax_step.set_ylabel("loss (nats/token)")
    for ax in (ax_step, ax_time):
        ax.grid(alpha=0.3)
        if log_y:
            ax.set_yscale("log")
    ax_step.legend(fontsize="small")
    fig.suptitle(title or "train (thin) and validation (markers) loss")
    fig.tight_layout()
    with atomic_path(out) as tmp:
        fig.savefig(tmp, dpi=120, format=out.suffix.lower().lstrip("."))
    plt.close(fig)
    return out


def _read_metrics(run: RunDir) -> list[dict]:
    """The rows of a run's metrics.jsonl, each with what a curve needs."""
    if not run.path.is_dir():
        raise FileNotFoundError(f"run directory not found: {run.path}")
    if not run.metrics.is_file():
        raise UserError(f"{run.path} has no {run.metrics.name}: is it a training run directory?")
    rows = run.read_metrics()
    for n, row in enumerate(rows, 1):
        if missing := [k for k in _NEEDED if k not in row]:
            raise InputError(f"{run.metrics}: row {n} has no {', '.join(missing)}")
    if not rows:
        raise UserError(f"{run.metrics} is empty: the run has not logged a step yet")
    return rows


def _curve(ax, rows, key, scale, color, label) -> None:
    x = [r[key] * scale for r in rows]
    ax.plot(x, [r["train_loss"] for r in rows], color=color, lw=0.8, alpha=0.6)
    val = [(r[key] * scale, r["val_loss"]) for r in rows if r.get("val_loss") is not None]
    if val:
        ax.plot(*zip(*val, strict=True), color=color, marker="o", ms=3, label=label)
    else:
        ax.lines[-1].set_label(label)


def _label(run_dir, run_dirs) -> str:
    """The directory name, or the whole path where two runs share a name."""
    names = [Path(d).name for d in run_dirs]
    name = Path(run_dir).name
    return name if names.count(name) == 1 else str(run_dir)
