"""Run the training service: the course's /loss API answered by really training each
configuration (submitit jobs, one per GPU, or on CPU; Slurm with --executor slurm), with
per-key budgets, a SQLite store (a restart loses nothing) and a dashboard at /.

Create keys first with `cs336-scaling keys create NAME` (same --state-dir).

Example:
  cs336-scaling keys create alice
  cs336-scaling serve --port 8000            # then open http://127.0.0.1:8000/
  cs336-scaling serve --settings tiny.json --token-file my_tokens.bin
  cs336-scaling serve --executor slurm --slurm slurm_partition=gpu --slurm gpus_per_node=1

--settings is a JSON object of ServiceSettings fields, e.g. {"d_model": [16, 64],
"train_flops": [1e9, 3e9], "budget": 1e11, "context_length": 64}.
"""

from __future__ import annotations

import socket
from pathlib import Path

from cs336_common.cli import non_negative_int
from cs336_common.errors import UserError
from cs336_scaling.commands._common import add_state_dir, open_state, port


def add_arguments(parser):
    add_state_dir(parser)
    parser.add_argument("--host", default="127.0.0.1", help="bind address (default: loopback only)")
    parser.add_argument(
        "--port", type=port, default=8000, help="port; 0 picks a free one (default: 8000)"
    )
    parser.add_argument(
        "--settings", type=Path, default=None, help="JSON file of ServiceSettings fields"
    )
    parser.add_argument(
        "--token-file",
        default=None,
        help="uint16/uint32 token file to train on (default: the shipped fortunes tokens)",
    )
    parser.add_argument(
        "--trainer",
        default=None,
        help="module:function that trains one config (default: cs336_scaling.trainer:train_run)",
    )
    parser.add_argument(
        "--executor",
        choices=("local", "slurm"),
        default=None,
        help="submitit executor (default: local)",
    )
    parser.add_argument(
        "--max-parallel",
        type=non_negative_int,
        default=None,
        help="runs at once (default: one per GPU, 1 on CPU)",
    )
    parser.add_argument(
        "--slurm",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="submitit Slurm parameter, repeatable (e.g. slurm_partition=gpu)",
    )


def run(args):
    settings = _settings(args)
    if settings.token_file is not None and not Path(settings.token_file).is_file():
        raise UserError(f"--token-file {settings.token_file}: file not found")
    _check_trainer(settings.trainer)
    lock, store = open_state(args.state_dir, exclusive=True)
    from cs336_scaling.runner import DIED, Runner
    from cs336_scaling.server import serve
    from cs336_scaling.service import ScalingService

    try:
        sock = socket.create_server((args.host, args.port))
    except OSError as e:
        lock.close()
        raise UserError(f"cannot listen on {args.host}:{args.port}: {e.strerror or e}") from None
    died = store.fail_running(DIED)
    runner = Runner(store, settings, args.state_dir / "jobs")
    runner.start()
    host, port = sock.getsockname()[:2]
    print(
        f"cs336-scaling service on http://{host}:{port}/ (state: {args.state_dir}; "
        f"{len(store.list_keys())} keys, {len(store.runs())} runs"
        + (f", {died} that died with the last server marked failed" if died else "")
        + ")",
        flush=True,
    )
    try:
        serve(ScalingService(store, runner, settings), sock, on_stop=runner.shutdown)
    finally:
        runner.shutdown()
        lock.close()
    return 0


def _check_trainer(trainer: str) -> None:
    """A trainer module that is not there fails every run: say so now. Submodules are
    looked up in their parents' folders, so nothing is imported (`find_spec` of a dotted
    name imports the parents) and torch stays out of the server process."""
    import importlib.machinery
    import importlib.util

    module = trainer.partition(":")[0]
    top, *rest = module.split(".")
    try:
        spec = importlib.util.find_spec(top)
        for part in rest:
            where = spec and spec.submodule_search_locations
            spec = where and importlib.machinery.PathFinder.find_spec(part, list(where))
    except (ImportError, ValueError):
        spec = None
    if not spec:
        raise UserError(f"trainer {trainer}: no module named {module!r}")


def _settings(args):
    from cs336_scaling.settings import ServiceSettings

    overrides = {}
    for name in ("token_file", "trainer", "executor", "max_parallel"):
        if getattr(args, name) is not None:
            overrides[name] = getattr(args, name)
    if args.slurm:
        slurm = {}
        for item in args.slurm:
            key, sep, value = item.partition("=")
            if not sep:
                raise UserError(f"--slurm {item!r}: expected KEY=VALUE")
            slurm[key] = int(value) if value.isdigit() else value
        overrides["slurm"] = slurm
    try:
        if args.settings is not None:
            return ServiceSettings.from_file(args.settings, **overrides)
        return ServiceSettings.from_dict(overrides, "options")
    except ValueError as e:
        raise UserError(str(e)) from None
