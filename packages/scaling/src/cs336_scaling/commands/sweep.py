"""Plan IsoFLOPs profiles under a total FLOPs budget and query a training service for
them (the local `cs336-scaling serve` or the course's server). Several model shapes per
compute budget, log-spaced around the Chinchilla guess D = 20 N, with num_layers and
num_heads chosen for each d_model. Answers go to --out as they arrive (a runs JSON that
`isoflops`, `fit` and `predict` read); a re-run asks only what is not there yet. A
profile whose lowest loss lies at its smallest or largest model is extended beyond that
edge (--extend shapes at most), so that the fits see the minimum bracketed.

Example:
  cs336-scaling sweep --url http://127.0.0.1:8000 --api-key $KEY \\
      --budgets 1e14 3e14 1e15 3e15 1e16 --total-budget 2e17 --out sweep.json
  cs336-scaling sweep ... --dry-run          # print the plan and its cost only
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

from cs336_common.cli import non_negative_int, positive_float, positive_int
from cs336_common.errors import InputError, UsageError, UserError
from cs336_scaling.commands._common import url

SETTINGS_FIELDS = ("d_model", "num_layers", "num_heads", "batch_size", "train_flops")


def add_arguments(parser):
    parser.add_argument(
        "--url",
        type=url,
        default="http://127.0.0.1:8000",
        help="the service (default: %(default)s)",
    )
    parser.add_argument(
        "--api-key",
        default=os.environ.get("CS336_SCALING_API_KEY"),
        help="API key (default: $CS336_SCALING_API_KEY)",
    )
    parser.add_argument(
        "--budgets",
        type=positive_float,
        nargs="+",
        required=True,
        metavar="FLOPS",
        help="compute budgets of the profiles (values of the service's FLOPs grid)",
    )
    parser.add_argument(
        "--total-budget",
        type=positive_float,
        required=True,
        metavar="FLOPS",
        help="the most FLOPs the sweep may spend; the largest budgets are dropped first",
    )
    parser.add_argument(
        "--points", type=positive_int, default=6, help="model sizes per budget (default: 6)"
    )
    parser.add_argument(
        "--batch-size", type=positive_int, default=128, help="of every run (default: 128)"
    )
    parser.add_argument(
        "--learning-rate", type=positive_float, default=1e-3, help="of every run (default: 1e-3)"
    )
    parser.add_argument(
        "--parallel", type=positive_int, default=4, help="queries in flight (default: 4)"
    )
    parser.add_argument(
        "--out", type=Path, default=Path("sweep.json"), help="results JSON (default: sweep.json)"
    )
    parser.add_argument(
        "--extend",
        type=non_negative_int,
        default=2,
        metavar="K",
        help="per profile, up to K more shapes beyond an edge where its minimum lies, "
        "asked once the profile is answered (default: 2; 0: off)",
    )
    parser.add_argument("--dry-run", action="store_true", help="print the plan and exit")


def run(args):
    if not args.dry_run and not args.api_key:
        raise UsageError("--api-key is required (or set CS336_SCALING_API_KEY)")
    from cs336_common.checks import check_output

    check_output(args.out)
    with _lock(args.out):
        return _sweep(args)


def _sweep(args):
    from cs336_scaling.client import ScalingClient, ScalingServiceError
    from cs336_scaling.settings import non_embedding_params

    done = _load(args.out)
    client = ScalingClient(args.url, args.api_key or "")
    settings = _service_settings(client)
    plan, dropped = plan_sweep(args, settings, done)
    todo = [c for c in plan if _key(c) not in done]
    cost = sum(c["train_flops"] for c in todo)
    for c in plan:
        mark = "done" if _key(c) in done else "todo"
        print(
            f"  {mark}  C={c['train_flops']:.0e}  d_model={c['d_model']:<5} layers={c['num_layers']:<3} "
            f"heads={c['num_heads']:<3} N={non_embedding_params(c):.3g}"
        )
    print(
        f"{len(plan)} runs planned, {len(todo)} to ask for, {cost:.3g} FLOPs"
        + (
            f"; dropped budgets over --total-budget: {', '.join(f'{b:.0e}' for b in dropped)}"
            if dropped
            else ""
        )
    )
    if args.dry_run:
        return 0
    from cs336_common.io import write_text_atomic

    lock, stop, failures = threading.Lock(), threading.Event(), []

    def ask(config):
        if stop.is_set():
            return
        try:
            loss = client.loss(**config)["loss"]
        except ScalingServiceError as e:
            failures.append(f"{config}: {e.message}")
            if e.status in (401, 403, None):  # bad key, budget or no service: stop asking
                stop.set()
            return
        with lock:
            done[_key(config)] = {
                "parameters": non_embedding_params(config),
                "compute_budget": config["train_flops"],
                "final_loss": loss,
                **config,
            }
            # the whole list, atomically: --out stays a runs JSON that isoflops, fit and
            # predict read at any moment, and an answer takes seconds to minutes of
            # training, so rewriting a few hundred records each time costs nothing
            write_text_atomic(args.out, json.dumps(list(done.values()), indent=1))

    asked, spent = set(), sum(c["train_flops"] for c in todo)
    while True:  # each profile is extended once its runs are answered, until bracketed
        more = _extensions(args, settings, plan, done, asked, spent)
        for c in more:
            print(f"  extend  C={c['train_flops']:.0e}  d_model={c['d_model']:<5} "
                  f"layers={c['num_layers']:<3} N={non_embedding_params(c):.3g}")  # fmt: skip
        todo += more
        spent += sum(c["train_flops"] for c in more)
        if not todo:
            break
        asked.update(map(_key, todo))
        code = _ask_all(ask, todo, args.parallel, stop)
        if code:
            lock.acquire()  # held until exit: no answer is half-written when the process ends
            print(f"interrupted: {len(done)} answers saved in {args.out}; re-run to continue")
            return code
        todo = []
        if stop.is_set():
            break
    print(f"{len(done)} answers in {args.out}")
    if failures:
        print(f"{len(failures)} queries failed; first: {failures[0]}")
        return 1
    return 0


def _ask_all(ask, todo, parallel: int, stop) -> int:
    """Ask for every config on ``parallel`` threads; 0, or 128 + the signal number when
    SIGINT or SIGTERM (which the CLI runner raises as `Interrupted`) stopped it. The
    threads are daemons: a query in flight cannot be cancelled, and waiting for it could
    take a whole training run (the service finishes it anyway, and a re-run gets its
    answer from the store for free)."""
    import queue

    from tqdm import tqdm

    pending, finished = queue.SimpleQueue(), queue.SimpleQueue()
    for config in todo:
        pending.put(config)

    def worker():
        while True:
            try:
                config = pending.get_nowait()
            except queue.Empty:
                return
            try:
                ask(config)
                finished.put(None)
            except BaseException as e:  # a bug: re-raised in the main thread
                finished.put(e)

    try:
        for _ in range(min(parallel, len(todo))):
            threading.Thread(target=worker, daemon=True).start()
        for _ in tqdm(range(len(todo)), desc="sweep"):
            error = finished.get()
            if error is not None:
                raise error
    except KeyboardInterrupt as e:
        stop.set()
        return getattr(e, "exit_code", 130)
    return 0


def _extensions(args, settings, plan, done, asked, spent) -> list[dict]:
    """The next shape beyond the edge of every answered profile whose minimum lies there,
    while the total budget allows and the profile has fewer than --extend extra shapes
    (counted over resumed sweeps too, so a re-run asks what the first run would have)."""
    from cs336_scaling.planner import edge_extension, profile_step, shapes

    candidates = shapes(settings["d_model"], settings["num_layers"], settings["num_heads"])
    step, base, more = profile_step(args.points), {_key(c) for c in plan}, []
    for budget in sorted({c["train_flops"] for c in plan}):
        if any(_key(c) not in done for c in plan if c["train_flops"] == budget):
            continue  # not all answered (yet, or a run failed)
        runs = [
            r
            for r in done.values()
            if r["compute_budget"] == budget
            and r.get("batch_size") == args.batch_size
            and r.get("learning_rate") == args.learning_rate
        ]
        if sum(_key(r) not in base for r in runs) >= args.extend:
            continue
        ctx = settings["context_length"]
        for c in edge_extension(runs, candidates, step, args.batch_size, args.learning_rate, ctx):
            if _key(c) not in asked and spent + c["train_flops"] <= args.total_budget:
                more.append(c)
                spent += c["train_flops"]
    return more


def plan_sweep(args, settings: dict, done: dict):
    from cs336_scaling.planner import plan_profile, shapes

    for b in args.budgets:
        if b not in settings["train_flops"]:
            raise UserError(
                f"--budgets: {b:g} is not on the service's FLOPs grid {settings['train_flops']}"
            )
    if args.batch_size not in settings["batch_size"]:
        raise UserError(
            f"--batch-size must be one of {settings['batch_size']}, got {args.batch_size}"
        )
    candidates = shapes(settings["d_model"], settings["num_layers"], settings["num_heads"])
    plan, spent, dropped = [], 0.0, []
    for budget in sorted(set(args.budgets)):
        profile = plan_profile(
            budget,
            candidates,
            args.points,
            args.batch_size,
            args.learning_rate,
            settings["context_length"],
        )
        cost = sum(c["train_flops"] for c in profile if _key(c) not in done)
        if spent + cost > args.total_budget:
            dropped.append(budget)
            continue
        plan += profile
        spent += cost
    return plan, dropped


def _service_settings(client) -> dict:
    """The service's ranges (`GET /settings`), or the course's when it has no such page
    (the course's server has none)."""
    import urllib.error
    import urllib.request

    from cs336_scaling.settings import ServiceSettings

    url = f"{client.base_url}/settings"
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            body = resp.read()
    except urllib.error.HTTPError as e:
        if e.code != 404:
            raise UserError(f"{url}: HTTP {e.code} {e.reason}") from None
        print(f"{url}: no settings page; planning with the course's ranges")
        return ServiceSettings().to_dict()
    except (urllib.error.URLError, OSError) as e:
        raise UserError(f"cannot reach {client.base_url}: {getattr(e, 'reason', e)}") from None
    try:
        settings = json.loads(body)
        ServiceSettings.from_dict(
            {k: settings[k] for k in (*SETTINGS_FIELDS, "context_length")}, url
        )
    except (json.JSONDecodeError, UnicodeDecodeError, TypeError) as e:
        raise UserError(f"{url}: not a settings JSON object ({e})") from None
    except KeyError as e:
        raise UserError(f"{url}: the settings lack the field {e}") from None
    except ValueError as e:  # ServiceSettings names the field at fault
        raise UserError(str(e)) from None
    return settings


def _lock(path: Path):
    """One sweep at a time writes ``path`` (two would each drop the other's answers)."""
    import fcntl

    lock = open(path.with_name(path.name + ".lock"), "a")  # noqa: SIM115 -- held while sweeping
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.close()
        raise UserError(f"--out {path}: another sweep is writing it") from None
    return lock


def _key(config: dict) -> str:
    from cs336_scaling.store import canonical

    return canonical(config)


def _load(path: Path) -> dict:
    if not path.exists():
        return {}
    try:
        records = json.loads(path.read_text(encoding="utf-8"))
        return {_key(r): r for r in records}
    except (OSError, json.JSONDecodeError, KeyError, TypeError) as e:
        raise InputError(
            f"--out {path}: not a sweep results file ({e}); move it away or pick another"
        ) from None
