"""The service's dashboard: budgets, the runs table, IsoFLOPs profiles and the current fit.

Server-rendered HTML that refreshes itself; the plot is a PNG re-drawn only when the set of
finished runs changed."""

from __future__ import annotations

import datetime
import html
import io
import threading

import numpy as np

from cs336_scaling.settings import ServiceSettings, non_embedding_params
from cs336_scaling.store import Store

PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><meta http-equiv="refresh" content="10">
<title>cs336-scaling service</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 1.5em; color: #222; }}
table {{ border-collapse: collapse; font-size: 13px; }}
td, th {{ border-bottom: 1px solid #ddd; padding: 3px 8px; text-align: right; }}
th {{ background: #f4f4f4; }}
.finished {{ color: #176317; }} .failed {{ color: #a11; }} .running {{ color: #a60; }}
.grid {{ display: flex; gap: 2em; flex-wrap: wrap; align-items: flex-start; }}
</style></head><body>
<h1>cs336-scaling service</h1>
<div class="grid"><div>
<h2>Budgets</h2>{budgets}
<h2>Current fit</h2>{fit}
</div><div><h2>IsoFLOPs profiles</h2><img src="/dashboard/isoflops.png" width="560" alt="IsoFLOPs profiles"></div></div>
<h2>Runs ({n_runs})</h2>{runs}
</body></html>
"""


class Dashboard:
    def __init__(self, store: Store, settings: ServiceSettings):
        self.store, self.settings = store, settings
        self._png: tuple[tuple, bytes] | None = None
        self._lock = threading.Lock()

    def html(self, api_key: str | None = None) -> str:
        keys = self.store.list_keys()
        names = {k["api_key"]: k["name"] for k in keys}
        runs = self.store.runs(api_key if api_key in names else None)
        budgets = _table(
            ["key", "used FLOPs", "budget", "used"],
            [
                [
                    k["name"],
                    f"{k['used']:.3g}",
                    f"{_budget(k, self.settings):.3g}",
                    f"{100 * k['used'] / _budget(k, self.settings):.1f}%",
                ]
                for k in keys
            ],
        )
        rows = [
            [
                r["id"],
                html.escape(names.get(r["api_key"], "")),
                r["d_model"],
                r["num_layers"],
                r["num_heads"],
                r["batch_size"],
                f"{r['learning_rate']:g}",
                f"{r['train_flops']:.0e}",
                f"{non_embedding_params(r):.3g}",
                f'<span class="{r["status"]}">{r["status"]}</span>',
                "" if r["loss"] is None else f"{r['loss']:.4f}",
                _time(r["created"]),
                html.escape(r["error"] or ""),
            ]
            for r in reversed(runs)
        ]
        table = _table(
            [
                "id",
                "key",
                "d_model",
                "layers",
                "heads",
                "batch",
                "lr",
                "FLOPs",
                "N",
                "status",
                "loss",
                "submitted",
                "error",
            ],
            rows,
            escape=False,
        )
        return PAGE.format(budgets=budgets, fit=self._fit_html(), runs=table, n_runs=len(runs))

    def _finished(self):
        from cs336_scaling.runs import as_runs

        runs = self.store.runs(status="finished")
        records = [
            {
                "parameters": non_embedding_params(r),
                "compute_budget": r["train_flops"],
                "final_loss": r["loss"],
            }
            for r in runs
        ]
        return as_runs(records) if records else None

    def _fit(self, runs):
        from cs336_scaling.isoflops import fit_isoflops

        if runs is None or len(np.unique(runs.compute_budget)) < 2:
            return None
        return fit_isoflops(runs, "parabola")

    def _fit_html(self) -> str:
        fit = self._fit(self._finished())
        if fit is None:
            return "<p>needs finished runs at two or more budgets</p>"
        return (
            f"<p>N<sub>opt</sub> = {fit.k_N:.3g} · C<sup>{fit.a:.3f}</sup><br>"
            f"D<sub>opt</sub> = {fit.k_D:.3g} · C<sup>{fit.b:.3f}</sup><br>"
            f"over {len(fit.budgets)} budgets (parabola per budget)</p>"
        )

    def png(self) -> bytes:
        runs = self._finished()
        state = () if runs is None else (len(runs), float(runs.final_loss.sum()))
        with self._lock:
            if self._png is None or self._png[0] != state:
                self._png = (state, _draw(runs, self._fit(runs)))
            return self._png[1]


def _draw(runs, fit) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    if runs is None:
        ax.text(0.5, 0.5, "no finished runs yet", ha="center", va="center", transform=ax.transAxes)
    else:
        budgets = np.unique(runs.compute_budget)
        for c, color in zip(
            budgets, plt.cm.viridis(np.linspace(0, 0.9, len(budgets))), strict=True
        ):
            sel = runs.compute_budget == c
            order = np.argsort(runs.parameters[sel])
            ax.plot(
                runs.parameters[sel][order],
                runs.final_loss[sel][order],
                "o-",
                ms=4,
                color=color,
                label=f"{c:.0e}",
            )
        if fit is not None:
            for n in fit.n_opt:
                ax.axvline(n, color="r", lw=0.6, alpha=0.4)
        ax.set(xscale="log")
        ax.legend(title="FLOPs", fontsize=7)
    ax.set(xlabel="non-embedding parameters N", ylabel="final loss")
    ax.grid(alpha=0.3, which="both")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def _budget(key: dict, settings: ServiceSettings) -> float:
    return key["budget"] if key["budget"] is not None else settings.budget


def _time(t: float | None) -> str:
    return "" if t is None else datetime.datetime.fromtimestamp(t).strftime("%H:%M:%S")


def _table(header, rows, escape=True) -> str:
    cell = (lambda v: html.escape(str(v))) if escape else str
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{cell(v)}</td>" for v in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"
