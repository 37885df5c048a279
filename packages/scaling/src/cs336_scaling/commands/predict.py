"""Fit the runs of a sweep and predict the compute-optimal model at a target budget: its
size (IsoFLOPs fit, parabola per budget with >= 3 runs), a concrete configuration (d_model, num_layers,
num_heads, batch size, learning rate) and its loss with a bootstrap interval (the
parametric fit L(N, D) at that size and D = C / 6N). Writes PNG plots.

Example:
  cs336-scaling predict sweep.json --target-flops 1e19 --out-dir predict_plots
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

PLOTS = ("isoflops_profiles.png", "n_opt.png", "loss.png")


def add_arguments(parser):
    add_runs_argument(parser)
    parser.add_argument(
        "--target-flops",
        type=positive_float,
        default=1e19,
        metavar="FLOPS",
        help="the compute budget to predict for (default: 1e19)",
    )
    parser.add_argument(
        "--bootstrap",
        type=non_negative_int,
        default=100,
        help="resamples for the interval (default: 100)",
    )
    parser.add_argument(
        "--level", type=interval_level, default=0.95, help="interval level (default: 0.95)"
    )
    parser.add_argument(
        "--out-dir",
        type=Path,
        default=Path("predict_plots"),
        help="folder for the PNG plots (default: ./predict_plots)",
    )
    parser.add_argument("--json", action="store_true", help="print the prediction as JSON")


def run(args):
    check_outputs("--out-dir", [args.out_dir / name for name in PLOTS], args.runs)
    from cs336_scaling.isoflops import fit_isoflops
    from cs336_scaling.parametric import fit_chinchilla
    from cs336_scaling.planner import closest_shape, shapes
    from cs336_scaling.runs import as_runs, default_runs_path, read_run_records

    records = read_run_records(args.runs)  # read once: the fits and the training settings
    runs = as_runs(records, str(args.runs or default_runs_path()))

    try:
        iso = fit_isoflops(runs, "parabola", min_runs=3)
        law = fit_chinchilla(runs, bootstrap=args.bootstrap, level=args.level)
    except ValueError as e:
        raise fit_error(args.runs, e) from None
    c = args.target_flops
    n_opt, d_opt = iso.predict(c)
    # Shapes beyond the service's ranges: the target is an extrapolation by design.
    d, layers, heads = closest_shape(n_opt, shapes((64, 16384), (2, 128), (1, 128)))
    batch, lr = _best_training_settings(records)
    out = {
        "target_flops": c,
        "a": iso.a,
        "N_opt": n_opt,
        "D_opt": d_opt,
        "config": {
            "d_model": d,
            "num_layers": layers,
            "num_heads": heads,
            "batch_size": batch,
            "learning_rate": lr,
            "parameters": 12 * layers * d * d,
            "tokens": int(c / (72 * layers * d * d)),
        },
        "loss": float(law.loss(n_opt, d_opt)),
        "loss_interval": law.loss_interval(n_opt, d_opt),
        "level": args.level,
        "parametric": {**law.params, "a": law.a},
    }
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        _print(out, len(runs))
    from cs336_scaling.plots import plot_law, plot_loss_prediction, plot_profiles

    profiles, n_opt, loss = (args.out_dir / name for name in PLOTS)
    paths = [
        plot_profiles(runs, iso, profiles, parametric=law),
        plot_law(iso, "N", n_opt, [c]),
        plot_loss_prediction(runs, law, c, out["loss"], out["loss_interval"], loss),
    ]
    if not args.json:
        print("plots: " + ", ".join(map(str, paths)))


def _best_training_settings(records) -> tuple[int, float]:
    """Batch size and learning rate of the best run at the largest budget (default 128, 1e-3)."""
    rows = [r for r in records if isinstance(r, dict) and {"batch_size", "learning_rate"} <= set(r)]
    if not rows:
        return 128, 1e-3
    top = max(r["compute_budget"] for r in rows)
    best = min((r for r in rows if r["compute_budget"] == top), key=lambda r: r["final_loss"])
    return int(best["batch_size"]), float(best["learning_rate"])


def _print(out: dict, n_runs: int) -> None:
    cfg, ci = out["config"], out["loss_interval"]
    level = f"{100 * out['level']:.0f}%"
    print(
        f"prediction at C = {out['target_flops']:.3g} FLOPs from {n_runs} runs (N_opt ∝ C^{out['a']:.3f})"
    )
    print(
        f"  N_opt = {out['N_opt']:.4g} parameters (non-embedding), D_opt = {out['D_opt']:.4g} tokens"
    )
    print(
        f"  config: d_model={cfg['d_model']} num_layers={cfg['num_layers']} num_heads={cfg['num_heads']} "
        f"batch_size={cfg['batch_size']} learning_rate={cfg['learning_rate']:g} "
        f"(N = {cfg['parameters']:.4g}, {cfg['tokens']:.4g} tokens)"
    )
    interval = f" [{ci[0]:.4f}, {ci[1]:.4f}] ({level})" if ci else ""
    print(f"  predicted loss: {out['loss']:.4f}{interval}")
