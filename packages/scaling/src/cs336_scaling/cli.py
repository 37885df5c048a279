"""`cs336-scaling`: scaling laws (IsoFLOPs and parametric fits) and a local training service
that answers "what loss does this configuration reach?" by really training it."""

from __future__ import annotations

from collections.abc import Sequence

from cs336_common.cli import run_cli

COMMANDS = {
    "isoflops": (
        "cs336_scaling.commands.isoflops",
        "IsoFLOPs fit: N_opt and D_opt power laws, predictions for 1e23/1e24 FLOPs, PNG plots",
    ),
    "fit": (
        "cs336_scaling.commands.fit",
        "parametric fit L(N, D) = E + A/N^alpha + B/D^beta with bootstrap intervals",
    ),
    "serve": (
        "cs336_scaling.commands.serve",
        "run the training service (course /loss API, async runs, budgets, dashboard)",
    ),
    "sweep": (
        "cs336_scaling.commands.sweep",
        "plan IsoFLOPs profiles under a total budget and query a service for them (resumable)",
    ),
    "predict": (
        "cs336_scaling.commands.predict",
        "fit a sweep and predict the optimal model, a concrete config and its loss at a budget",
    ),
    "keys": ("cs336_scaling.commands.keys", "create and list the service's API keys"),
    "about": ("cs336_common.about", "version, summary and status of this package"),
}


def main(argv: Sequence[str] | None = None) -> int:
    return run_cli("cs336-scaling", __doc__, COMMANDS, argv)


if __name__ == "__main__":
    raise SystemExit(main())
