"""The fits recover the parameters of known laws from seeded noisy synthetic runs."""

import json

import numpy as np
import pytest

from cs336_scaling.isoflops import fit_isoflops
from cs336_scaling.parametric import fit_chinchilla
from cs336_scaling.runs import as_runs, load_runs

BUDGETS = np.geomspace(1e17, 1e21, 9)


def _parabola_runs(a, k_n, noise, rng, points=9):
    """Profiles that are exact parabolas in log N with vertex at N_opt = k_N C^a."""
    records = []
    for c in BUDGETS:
        center = np.log(k_n * c**a)
        # An off-centre grid, so the vertex is never a sampled point.
        for x in center + np.linspace(-1.7, 2.1, points) + rng.uniform(-0.1, 0.1):
            loss = 10 * c**-0.05 + 0.08 * (x - center) ** 2 + rng.normal(0, noise)
            records.append(
                {"parameters": float(np.exp(x)), "compute_budget": c, "final_loss": loss}
            )
    return records


def test_parabola_recovers_the_exponent_and_coefficient():
    rng = np.random.default_rng(0)
    fit = fit_isoflops(_parabola_runs(0.45, 0.3, 1e-3, rng), method="parabola")
    assert fit.a == pytest.approx(0.45, abs=0.01)
    assert np.log(fit.k_N) == pytest.approx(np.log(0.3), abs=0.5)
    n, d = fit.predict(1e23)
    assert n == pytest.approx(0.3 * 1e23**0.45, rel=0.15)
    assert d == pytest.approx(1e23 / (6 * n), rel=1e-9)


def test_min_is_as_good_as_its_grid_and_d_follows_from_n():
    rng = np.random.default_rng(1)
    fit = fit_isoflops(_parabola_runs(0.5, 0.1, 1e-4, rng, points=41), method="min")
    assert fit.a == pytest.approx(0.5, abs=0.02)
    # D = C/(6N) makes the D law a mirror of the N law.
    assert fit.b == pytest.approx(1 - fit.a, abs=1e-9)
    assert fit.k_D == pytest.approx(1 / (6 * fit.k_N), rel=1e-9)
    n, d = fit.predict(np.array([1e22, 1e23]))
    assert n.shape == (2,) and np.all(d > 0)


def test_min_picks_each_budgets_lowest_run():
    runs = [
        {"parameters": n, "compute_budget": c, "final_loss": loss}
        for c, rows in {
            1e18: [(1e7, 3.0), (2e7, 2.5), (4e7, 2.7)],
            1e19: [(2e7, 2.6), (5e7, 2.2), (9e7, 2.1)],
        }.items()
        for n, loss in rows
    ]
    fit = fit_isoflops(runs)
    assert fit.n_opt == (2e7, 9e7)
    assert fit.a == pytest.approx(np.log10(9e7 / 2e7))


def test_isoflops_rejects_bad_input():
    with pytest.raises(ValueError, match="method"):
        fit_isoflops(load_runs(), method="cubic")
    with pytest.raises(ValueError, match=">= 2 compute budgets"):
        fit_isoflops([{"parameters": 1, "compute_budget": 1, "final_loss": 1}])


def test_min_runs_leaves_out_unfinished_profiles():
    rng = np.random.default_rng(2)
    records = _parabola_runs(0.45, 0.3, 1e-3, rng)
    lonely = {"parameters": 1e3, "compute_budget": 1e22, "final_loss": 0.1}
    full = fit_isoflops(records, "parabola")
    assert fit_isoflops([*records, lonely], "parabola", min_runs=3) == full
    assert fit_isoflops([*records, lonely], "parabola").budgets[-1] == 1e22
    with pytest.raises(ValueError, match=r"run 1 field 'final_loss' must be a number > 0, got 'x'"):
        as_runs(
            [
                {"parameters": 1, "compute_budget": 1, "final_loss": 1},
                {"parameters": 1, "compute_budget": 1, "final_loss": "x"},
            ]
        )


TRUE = {"E": 1.69, "A": 406.4, "B": 410.7, "alpha": 0.34, "beta": 0.28}  # Hoffmann et al.


def _law_runs(rng, noise):
    records = []
    for c in np.geomspace(1e17, 1e21, 7):
        for n in np.geomspace(1e7, 3e10, 10):
            d = c / (6 * n)
            loss = TRUE["E"] + TRUE["A"] / n ** TRUE["alpha"] + TRUE["B"] / d ** TRUE["beta"]
            records.append(
                {
                    "parameters": n,
                    "compute_budget": c,
                    "final_loss": loss * np.exp(rng.normal(0, noise)),
                }
            )
    return records


def test_parametric_recovers_known_law_with_intervals():
    fit = fit_chinchilla(_law_runs(np.random.default_rng(0), 0.003), bootstrap=12, seed=0)
    assert fit.alpha == pytest.approx(TRUE["alpha"], abs=0.02)
    assert fit.beta == pytest.approx(TRUE["beta"], abs=0.02)
    assert abs(fit.E - TRUE["E"]) < 0.05
    assert fit.a == pytest.approx(TRUE["beta"] / (TRUE["alpha"] + TRUE["beta"]), abs=0.02)
    lo, hi = fit.interval("alpha")
    assert lo < fit.alpha < hi and hi - lo < 0.1
    p = fit.predict(1e23)
    assert p.loss_interval[0] <= p.loss <= p.loss_interval[1]
    assert p.D_opt == pytest.approx(1e23 / (6 * p.N_opt))
    # The closed-form optimum is the minimum of L along the iso-FLOP line.
    n = np.geomspace(p.N_opt / 3, p.N_opt * 3, 2001)
    assert n[np.argmin(fit.loss(n, 1e23 / (6 * n)))] == pytest.approx(p.N_opt, rel=0.01)


def test_parametric_is_exact_on_the_course_curves():
    # The course's curves lie exactly on a law of this form: the fit must find it.
    fit = fit_chinchilla(load_runs())
    assert fit.huber_loss < 1e-12
    assert fit.alpha == pytest.approx(0.34, abs=1e-4) and fit.beta == pytest.approx(0.36, abs=1e-4)
    assert fit.interval("alpha") is None


def test_shipped_curves_are_the_course_file():
    runs = load_runs()
    assert len(runs) == 72 and len(np.unique(runs.compute_budget)) == 9
    first = json.loads(load_runs.__globals__["default_runs_path"]().read_text())[0]
    assert first == {
        "parameters": 49999999,
        "compute_budget": 6e18,
        "final_loss": 7.192784500319437,
    }
