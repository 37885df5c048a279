"""IsoFLOPs fit (Chinchilla approach 2): per compute budget the loss-optimal model size, then
power laws N_opt = k_N·C^a and D_opt = k_D·C^b (D = C/(6N)). Prints the exponents and the
compute-optimal N and D at the target budgets, and writes PNG plots of the profiles and of
both laws with their extrapolation.

Input: a JSON list of {"parameters", "compute_budget", "final_loss"}; default: the course's
isoflops_curves.json, shipped with the package.

Example:
  cs336-scaling isoflops --method parabola --out-dir plots/
  cs336-scaling isoflops my_runs.json --json
"""

from __future__ import annotations

import json
from pathlib import Path

from cs336_common.cli import positive_float, positive_int
from cs336_scaling.commands._common import add_runs_argument, check_outputs, fit_error

PLOTS = ("isoflops_profiles.png", "n_opt.png", "d_opt.png")


def add_arguments(parser):
    add_runs_argument(parser)
    parser.add_argument(
        "--method",
        choices=("min", "parabola"),
        default="min",
        help="per-budget optimum: lowest-loss run, or vertex of a quadratic in log N (default: min)",
    )
    parser.add_argument(
        "--targets",
        type=positive_float,
        nargs="+",
        default=[1e23, 1e24],
        metavar="FLOPS",
        help="budgets to predict N_opt and D_opt for (default: 1e23 1e24)",
    )
    parser.add_argument(
        "--out-dir",
        type=Path,
        default=Path("isoflops_plots"),
        help="folder for isoflops_profiles.png, n_opt.png, d_opt.png (default: ./isoflops_plots)",
    )
    parser.add_argument(
        "--min-runs",
        type=positive_int,
        default=1,
        help="leave out budgets with fewer runs (unfinished profiles; default: 1)",
    )
    parser.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    parser.add_argument("--json", action="store_true", help="print the fit as JSON")


def run(args):
    if not args.no_plots:
        check_outputs("--out-dir", [args.out_dir / name for name in PLOTS], args.runs)
    import numpy as np

    from cs336_scaling.isoflops import fit_isoflops
    from cs336_scaling.runs import load_runs

    runs = load_runs(args.runs)

    try:
        fit = fit_isoflops(runs, args.method, min_runs=args.min_runs)
    except ValueError as e:
        raise fit_error(args.runs, e) from None
    predictions = {
        f"{c:.0e}": dict(zip(("N_opt", "D_opt"), fit.predict(c), strict=True)) for c in args.targets
    }
    if args.json:
        out = {"a": fit.a, "b": fit.b, "k_N": fit.k_N, "k_D": fit.k_D, "predictions": predictions}
        print(json.dumps(out, indent=2))
    else:
        used = int(np.isin(runs.compute_budget, fit.budgets).sum())
        print(f"IsoFLOPs fit ({args.method}) over {len(fit.budgets)} budgets, {used} runs")
        print(f"  N_opt = {fit.k_N:.4g} * C^{fit.a:.4f}")
        print(f"  D_opt = {fit.k_D:.4g} * C^{fit.b:.4f}")
        for c, p in predictions.items():
            print(
                f"  C = {c} FLOPs: N_opt = {p['N_opt']:.4g} parameters, D_opt = {p['D_opt']:.4g} tokens"
            )
    if not args.no_plots:
        from cs336_scaling.plots import plot_law, plot_profiles

        profiles, n_opt, d_opt = (args.out_dir / name for name in PLOTS)
        paths = [
            plot_profiles(runs, fit, profiles),
            plot_law(fit, "N", n_opt, args.targets),
            plot_law(fit, "D", d_opt, args.targets),
        ]
        if not args.json:
            print("plots: " + ", ".join(str(p) for p in paths))
