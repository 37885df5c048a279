"""Parametric loss fit ``L(N, D) = E + A/N^α + B/D^β`` (Hoffmann et al. 2022, approach 3).

As in the paper: Huber loss (δ = 1e-3) between ``log L`` and ``LSE(a - α log N,
b - β log D, e)`` with ``A, B, E = exp(a), exp(b), exp(e)``, minimised by L-BFGS from the
best points of a grid of starts. Confidence intervals come from refitting bootstrap
resamples of the runs (percentile intervals).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import minimize
from scipy.special import logsumexp

from cs336_scaling.runs import as_runs

PARAMS = ("E", "A", "B", "alpha", "beta")
# The paper's grid: α, β ∈ {0, .5, …, 2}, e ∈ {-1, -.5, …, 1}, a, b ∈ {0, 5, …, 25}.
_GRID = np.array(
    list(
        itertools.product(
            np.arange(0, 30, 5.0),  # a
            np.arange(0, 30, 5.0),  # b
            np.arange(-1, 1.5, 0.5),  # e
            np.arange(0, 2.5, 0.5),  # alpha
            np.arange(0, 2.5, 0.5),  # beta
        )
    )
)


@dataclass(frozen=True)
class Prediction:
    """Compute-optimal size, tokens and loss at one budget, with bootstrap intervals."""

    compute: float
    N_opt: float
    D_opt: float
    loss: float
    N_interval: tuple[float, float] | None = None
    D_interval: tuple[float, float] | None = None
    loss_interval: tuple[float, float] | None = None


@dataclass(frozen=True)
class ChinchillaFit:
    E: float
    A: float
    B: float
    alpha: float
    beta: float
    huber_loss: float = float("nan")
    level: float = 0.95
    # Bootstrap refits, one row per resample, columns as PARAMS.
    samples: np.ndarray = field(default_factory=lambda: np.empty((0, 5)), repr=False)

    @property
    def params(self) -> dict[str, float]:
        return {name: getattr(self, name) for name in PARAMS}

    @property
    def a(self) -> float:
        """Exponent of ``N_opt ∝ C^a`` implied by the law: β / (α + β)."""
        return self.beta / (self.alpha + self.beta)

    def loss(self, n, d):
        return _law(self.params, np.asarray(n, float), np.asarray(d, float))

    def compute_optimal(self, compute):
        return _optimum(self.params, np.asarray(compute, float))

    def loss_interval(self, n: float, d: float) -> tuple[float, float] | None:
        """Bootstrap interval of the law's loss at one (N, D)."""
        if not len(self.samples):
            return None
        boot = dict(zip(PARAMS, self.samples.T, strict=True))
        return self._percentiles(_law(boot, np.float64(n), np.float64(d)))

    def interval(self, name: str) -> tuple[float, float] | None:
        """Percentile interval of a parameter (or ``"a"``) over the bootstrap refits."""
        if not len(self.samples):
            return None
        cols = dict(zip(PARAMS, self.samples.T, strict=True))
        values = cols["beta"] / (cols["alpha"] + cols["beta"]) if name == "a" else cols[name]
        return self._percentiles(values)

    def predict(self, compute: float) -> Prediction:
        n, d = self.compute_optimal(compute)
        pred = Prediction(float(compute), float(n), float(d), float(self.loss(n, d)))
        if not len(self.samples):
            return pred
        boot = dict(zip(PARAMS, self.samples.T, strict=True))
        bn, bd = _optimum(boot, np.full(len(self.samples), float(compute)))
        return Prediction(
            pred.compute,
            pred.N_opt,
            pred.D_opt,
            pred.loss,
            self._percentiles(bn),
            self._percentiles(bd),
            self._percentiles(_law(boot, bn, bd)),
        )

    def _percentiles(self, values: np.ndarray) -> tuple[float, float]:
        tail = 50 * (1 - self.level)
        lo, hi = np.nanpercentile(values, [tail, 100 - tail])
        return float(lo), float(hi)


def fit_chinchilla(
    runs,
    *,
    bootstrap: int = 0,
    level: float = 0.95,
    seed: int = 0,
    delta: float = 1e-3,
    starts: int = 16,
    progress=None,
) -> ChinchillaFit:
    """Fit the law to runs (dicts or `Runs`); ``bootstrap`` resamples give the intervals.

    ``starts``: how many of the grid's best points L-BFGS starts from (the whole grid is
    evaluated first, which is cheap). ``progress`` wraps the bootstrap loop (e.g. tqdm).
    """
    runs = as_runs(runs)
    if len(runs) < 5:
        raise ValueError(f"the parametric fit has 5 parameters; need >= 5 runs, got {len(runs)}")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    data = np.log(runs.parameters), np.log(runs.tokens), np.log(runs.final_loss)
    inits = _best_starts(data, delta, starts)
    theta, value = _fit(data, inits, delta)
    rng = np.random.default_rng(seed)
    rows = []
    loop = range(bootstrap)
    for _ in progress(loop) if progress else loop:
        idx = rng.integers(0, len(runs), len(runs))
        sample = tuple(col[idx] for col in data)
        # The full fit and the grid's three best starts: resamples share the basin.
        rows.append(_to_params(_fit(sample, np.vstack([theta, inits[:3]]), delta)[0]))
    return ChinchillaFit(
        **dict(zip(PARAMS, _to_params(theta), strict=True)),
        huber_loss=value,
        level=level,
        samples=np.array(rows).reshape(-1, 5),
    )


def _objective(theta, data, delta):
    """Mean Huber loss and its gradient with respect to ``(a, b, e, α, β)``."""
    a, b, e, alpha, beta = theta
    log_n, log_d, log_l = data
    terms = np.stack([a - alpha * log_n, b - beta * log_d, np.full_like(log_n, e)])
    top = terms.max(axis=0)
    w = np.exp(terms - top)
    total = w.sum(axis=0)
    w /= total
    r = top + np.log(total) - log_l
    small = np.abs(r) <= delta
    h = np.where(small, 0.5 * r**2, delta * (np.abs(r) - 0.5 * delta))
    dh = np.where(small, r, delta * np.sign(r)) / len(r)
    grad = np.array(
        [
            (dh * w[0]).sum(),
            (dh * w[1]).sum(),
            (dh * w[2]).sum(),
            -(dh * w[0] * log_n).sum(),
            -(dh * w[1] * log_d).sum(),
        ]
    )
    # Scaled by 1/δ² so that L-BFGS's stopping rule (relative to max(|f|, 1)) is not
    # triggered by the tiny absolute values of a δ = 1e-3 Huber loss.
    return h.mean() / delta**2, grad / delta**2


def _grid_values(data, delta):
    log_n, log_d, log_l = data
    a, b, e, alpha, beta = (_GRID[:, i : i + 1] for i in range(5))
    e = np.broadcast_to(e, (len(_GRID), len(log_n)))
    terms = np.stack([a - alpha * log_n, b - beta * log_d, e])
    r = np.abs(logsumexp(terms, axis=0) - log_l)
    return np.where(r <= delta, 0.5 * r**2, delta * (r - 0.5 * delta)).mean(axis=1)


def _best_starts(data, delta, k):
    return _GRID[np.argsort(_grid_values(data, delta))[:k]]


def _fit(data, inits, delta):
    """Best L-BFGS result over the starts. It optimises ``a' = a - α·mean(log N)`` (and
    likewise b'), which decorrelates the intercepts from the exponents: far fewer steps."""
    log_n, log_d, log_l = data
    mn, md = log_n.mean(), log_d.mean()
    centred = (log_n - mn, log_d - md, log_l)
    shift = np.array([mn, md])
    best = None
    for x0 in inits:
        x0 = x0.copy()
        x0[:2] -= x0[3:] * shift
        res = minimize(
            _objective,
            x0,
            args=(centred, delta),
            jac=True,
            method="L-BFGS-B",
            options={"maxiter": 2000, "ftol": 1e-12, "gtol": 1e-6},
        )
        if np.isfinite(res.fun) and (best is None or res.fun < best.fun):
            best = res
    theta = best.x.copy()
    theta[:2] += theta[3:] * shift
    return theta, float(best.fun * delta**2)


def _to_params(theta):
    a, b, e, alpha, beta = theta
    return [float(np.exp(e)), float(np.exp(a)), float(np.exp(b)), float(alpha), float(beta)]


def _law(p, n, d):
    return p["E"] + p["A"] / n ** p["alpha"] + p["B"] / d ** p["beta"]


def _optimum(p, compute):
    """Minimise L(N, C/(6N)) in closed form: N_opt = G (C/6)^(β/(α+β))."""
    alpha, beta = p["alpha"], p["beta"]
    g = (alpha * p["A"] / (beta * p["B"])) ** (1 / (alpha + beta))
    n = g * (compute / 6) ** (beta / (alpha + beta))
    return n, compute / (6 * n)
