"""IsoFLOPs fit (Hoffmann et al. 2022, approach 2): per compute budget the loss-optimal
model size, then power laws ``N_opt = k_N · C^a`` and ``D_opt = k_D · C^b`` with
``D = C / (6 N)``."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cs336_scaling.runs import Runs, as_runs

METHODS = ("min", "parabola")


@dataclass(frozen=True)
class IsoFlopsFit:
    """Fitted power laws plus the per-budget optima they were fitted to."""

    a: float
    b: float
    k_N: float
    k_D: float
    budgets: tuple[float, ...] = ()
    n_opt: tuple[float, ...] = ()
    method: str = "min"

    def predict(self, compute):
        """``(N_opt, D_opt)`` for a compute budget in FLOPs (scalar or array)."""
        c = np.asarray(compute, dtype=np.float64)
        n, d = self.k_N * c**self.a, self.k_D * c**self.b
        return (float(n), float(d)) if n.ndim == 0 else (n, d)

    @property
    def d_opt(self) -> tuple[float, ...]:
        return tuple(c / (6.0 * n) for c, n in zip(self.budgets, self.n_opt, strict=True))


def fit_isoflops(runs, method: str = "min") -> IsoFlopsFit:
    """Fit ``N_opt(C)`` and ``D_opt(C)`` from runs grouped by ``compute_budget``.

    ``method="min"`` takes each budget's minimum-loss run; ``"parabola"`` fits a quadratic
    in log N to each budget's runs and takes its vertex (falling back to the minimum when
    the quadratic does not open upwards or its vertex leaves the sampled range).
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    runs = as_runs(runs)
    budgets, n_opt = optimal_sizes(runs, method)
    if len(budgets) < 2:
        raise ValueError(f"need runs at >= 2 distinct compute budgets, got {len(budgets)}")
    a, log_kn = _power_law(budgets, n_opt)
    b, log_kd = _power_law(budgets, budgets / (6.0 * n_opt))
    return IsoFlopsFit(
        a=a,
        b=b,
        k_N=float(np.exp(log_kn)),
        k_D=float(np.exp(log_kd)),
        budgets=tuple(budgets.tolist()),
        n_opt=tuple(n_opt.tolist()),
        method=method,
    )


def optimal_sizes(runs: Runs, method: str = "min") -> tuple[np.ndarray, np.ndarray]:
    """Sorted distinct budgets and the loss-optimal parameter count at each."""
    budgets = np.unique(runs.compute_budget)
    n_opt = np.empty_like(budgets)
    for i, c in enumerate(budgets):
        sel = runs.compute_budget == c
        n_opt[i] = _optimum(runs.parameters[sel], runs.final_loss[sel], method)
    return budgets, n_opt


def _optimum(params: np.ndarray, losses: np.ndarray, method: str) -> float:
    best = float(params[np.argmin(losses)])
    if method == "min" or len(np.unique(params)) < 3:
        return best
    x = np.log(params)
    c2, c1, _ = np.polyfit(x, losses, 2)
    if c2 <= 0:
        return best
    vertex = -c1 / (2 * c2)
    if not x.min() <= vertex <= x.max():
        return best
    return float(np.exp(vertex))


def _power_law(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Least squares of ``log y = log k + e · log x``; returns ``(e, log k)``."""
    e, log_k = np.polyfit(np.log(x), np.log(y), 1)
    return float(e), float(log_k)
