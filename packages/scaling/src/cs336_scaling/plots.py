"""PNG plots of IsoFLOPs profiles, fitted scaling laws and their extrapolation."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cs336_common.io import atomic_path


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> Path:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120, bbox_inches="tight")
    _pyplot().close(fig)
    return path


def plot_profiles(runs, fit, path: Path, parametric=None) -> Path:
    """Loss against parameters, one curve per budget, optimum of each marked."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    budgets = np.unique(runs.compute_budget)
    colors = plt.cm.viridis(np.linspace(0, 0.9, len(budgets)))
    for c, color in zip(budgets, colors, strict=True):
        sel = runs.compute_budget == c
        order = np.argsort(runs.parameters[sel])
        ax.plot(
            runs.parameters[sel][order],
            runs.final_loss[sel][order],
            "o-",
            ms=3,
            color=color,
            label=f"{c:.0e}",
        )
        if parametric is not None:
            n = np.geomspace(runs.parameters[sel].min(), runs.parameters[sel].max(), 50)
            ax.plot(n, parametric.loss(n, c / (6 * n)), ":", color=color, lw=1)
    for c, n in zip(fit.budgets, fit.n_opt, strict=True):
        sel = runs.compute_budget == c
        loss = np.interp(np.log(n), *_sorted_xy(np.log(runs.parameters[sel]), runs.final_loss[sel]))
        ax.plot(n, loss, "r*", ms=9)
    ax.set(xscale="log", xlabel="parameters N", ylabel="final loss", title="IsoFLOPs profiles")
    ax.legend(title="FLOPs", fontsize=7, ncol=2)
    ax.grid(alpha=0.3, which="both")
    return _save(fig, path)


def _sorted_xy(x, y):
    order = np.argsort(x)
    return x[order], y[order]


def plot_law(fit, which: str, path: Path, targets=(1e23, 1e24)) -> Path:
    """``which="N"`` or ``"D"``: the per-budget optima, the fitted law, its extrapolation."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    budgets = np.asarray(fit.budgets)
    points = np.asarray(fit.n_opt if which == "N" else fit.d_opt)
    exponent, k = (fit.a, fit.k_N) if which == "N" else (fit.b, fit.k_D)
    grid = np.geomspace(budgets.min(), max(max(targets, default=0), budgets.max()), 100)
    ax.plot(grid, k * grid**exponent, "-", color="C1", label=f"{k:.3g} · C^{exponent:.3f}")
    ax.plot(budgets, points, "o", color="C0", label=f"optimum per budget ({fit.method})")
    for c in targets:
        value = k * c**exponent
        ax.plot(c, value, "s", color="C3")
        ax.annotate(
            f"{value:.3g} @ {c:.0e}",
            (c, value),
            textcoords="offset points",
            xytext=(-90, 6),
            fontsize=8,
        )
    label = "parameters N_opt" if which == "N" else "tokens D_opt"
    ax.set(
        xscale="log",
        yscale="log",
        xlabel="compute C (FLOPs)",
        ylabel=label,
        title=f"Compute-optimal {label}",
    )
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, which="both")
    return _save(fig, path)


def plot_loss_prediction(runs, law, target, loss, interval, path: Path) -> Path:
    """Best loss per budget, the law's compute-optimal loss curve, and the prediction."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    budgets = np.unique(runs.compute_budget)
    best = [runs.final_loss[runs.compute_budget == c].min() for c in budgets]
    ax.plot(budgets, best, "o", label="best run per budget")
    grid = np.geomspace(budgets.min(), max(target, budgets.max()), 100)
    n, d = law.compute_optimal(grid)
    ax.plot(grid, law.loss(n, d), "-", color="C1", label="L(N_opt, D_opt) of the fitted law")
    yerr = None if interval is None else [[loss - interval[0]], [interval[1] - loss]]
    ax.errorbar(
        [target],
        [loss],
        yerr=yerr,
        fmt="s",
        color="C3",
        capsize=4,
        label=f"prediction @ {target:.0e}",
    )
    ax.set(
        xscale="log", xlabel="compute C (FLOPs)", ylabel="final loss", title="Loss against compute"
    )
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, which="both")
    return _save(fig, path)
