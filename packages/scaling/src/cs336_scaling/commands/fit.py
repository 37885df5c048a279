"""Parametric fit L(N, D) = E + A/N^alpha + B/D^beta (Chinchilla approach 3): Huber loss on
log-loss, L-BFGS from the best points of a grid of starts, bootstrap confidence intervals for
every parameter and for the compute-optimal N, D and loss at the target budgets.

Example:
  cs336-scaling fit --bootstrap 200 --targets 1e23 1e24
  cs336-scaling fit my_runs.json --json
"""

from __future__ import annotations

import json
from pathlib import Path

from cs336_common.cli import non_negative_int, positive_float
from cs336_scaling.commands._common import (
    add_runs_argument,
    check_outputs,
    fit_error,
    interval_level,
)


def add_arguments(parser):
    add_runs_argument(parser)
    parser.add_argument(
        "--bootstrap",
        type=non_negative_int,
        default=100,
        metavar="B",
        help="bootstrap resamples for the intervals; 0 for none (default: 100)",
    )
    parser.add_argument(
        "--level", type=interval_level, default=0.95, help="interval level (default: 0.95)"
    )
    parser.add_argument(
        "--seed", type=non_negative_int, default=0, help="bootstrap seed (default: 0)"
    )
    parser.add_argument(
        "--targets",
        type=positive_float,
        nargs="+",
        default=[1e23, 1e24],
        metavar="FLOPS",
        help="budgets to predict for (default: 1e23 1e24)",
    )
    parser.add_argument(
        "--plot",
        type=Path,
        default=None,
        metavar="PNG",
        help="also plot the profiles with the fitted law's curves to this .png file",
    )
    parser.add_argument("--json", action="store_true", help="print the fit as JSON")


def run(args):
    if args.plot is not None:
        check_outputs("--plot", [args.plot], args.runs, suffixes=(".png",))
    from tqdm import tqdm

    from cs336_scaling.parametric import fit_chinchilla
    from cs336_scaling.runs import load_runs

    runs = load_runs(args.runs)

    try:
        fit = fit_chinchilla(
            runs,
            bootstrap=args.bootstrap,
            level=args.level,
            seed=args.seed,
            progress=lambda it: tqdm(it, desc="bootstrap", disable=args.json or None, leave=False),
        )
    except ValueError as e:
        raise fit_error(args.runs, e) from None
    report = fit_report(fit, args.targets)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print_report(report, len(runs))
    if args.plot is not None:
        from cs336_scaling.isoflops import fit_isoflops
        from cs336_scaling.plots import plot_profiles

        plot_profiles(runs, fit_isoflops(runs), args.plot, parametric=fit)
        print(f"plot: {args.plot}")


def fit_report(fit, targets) -> dict:
    """The fit as plain JSON-able data: parameters, intervals, predictions."""
    names = ("E", "A", "B", "alpha", "beta", "a")
    return {
        "params": {n: getattr(fit, n) for n in names},
        "intervals": {n: fit.interval(n) for n in names},
        "level": fit.level,
        "bootstrap": len(fit.samples),
        "predictions": {f"{c:.0e}": vars(fit.predict(c)) for c in targets},
    }


def print_report(report: dict, n_runs: int) -> None:
    level = f"{100 * report['level']:.0f}%"
    print(
        f"L(N, D) = E + A/N^alpha + B/D^beta over {n_runs} runs "
        f"({report['bootstrap']} bootstrap resamples, {level} intervals)"
    )
    for name, value in report["params"].items():
        ci = report["intervals"][name]
        ci_text = f"  [{ci[0]:.4g}, {ci[1]:.4g}]" if ci else ""
        label = "a = beta/(alpha+beta)" if name == "a" else name
        print(f"  {label:>22} = {value:.4g}{ci_text}")
    for c, p in report["predictions"].items():
        parts = []
        for key, unit in (("N_opt", "parameters"), ("D_opt", "tokens"), ("loss", "loss")):
            ci = p[key.replace("_opt", "") + "_interval"] if key != "loss" else p["loss_interval"]
            ci_text = f" [{ci[0]:.4g}, {ci[1]:.4g}]" if ci else ""
            parts.append(f"{p[key]:.4g}{ci_text} {unit}")
        print(f"  C = {c}: " + ", ".join(parts))
