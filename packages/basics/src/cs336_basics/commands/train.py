"""Train a Transformer LM from a config file: TOML (or YAML with PyYAML installed), or
the name of a shipped config. Each run writes config.json, metrics.jsonl and
checkpoints/ into its out_dir; plot them with `cs336-basics plot`.

Shipped configs: tinystories, tinystories_cpu, owt, ablation_no_rmsnorm,
ablation_post_norm, ablation_nope, ablation_silu, lr_sweep, batch_size_sweep.

Examples:
  cs336-basics train tinystories
  cs336-basics train tinystories_cpu --set model.d_model=256 --set lr=3e-4
  cs336-basics train lr_sweep --set total_tokens=40_960_000
  cs336-basics train tinystories --sweep lr=1e-3,3e-3 --set out_dir=runs/my_sweep
  cs336-basics train --resume runs/tinystories
  cs336-basics train --resume runs/tinystories --set max_steps=20000 --allow-schedule-change

Resuming keeps the model and the data of the run (a changed one is refused, naming the
fields); schedule and length changes (max_steps, total_tokens, lr, warmup_steps, ...)
need --allow-schedule-change and are recorded in the run's history.jsonl. SIGINT
(Ctrl-C) or SIGTERM finishes the current step, checkpoints and exits with 130 or 143;
`--resume` continues exactly. One process at a time may train into a run directory.
"""

import sys


def add_arguments(parser):
    parser.add_argument("config", nargs="?", help="config file or shipped config name")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a setting; dotted keys reach into the model (model.d_model=256)",
    )
    parser.add_argument(
        "--sweep",
        action="append",
        default=[],
        metavar="KEY=V1,V2,...",
        help="one run per value (several --sweep: every combination), each in out_dir/KEY=V",
    )
    parser.add_argument(
        "--resume", metavar="RUN_DIR", help="continue a run from its latest checkpoint"
    )
    parser.add_argument(
        "--allow-schedule-change",
        action="store_true",
        help="with --resume: accept --set changes of the schedule or length (max_steps, "
        "total_tokens, lr, min_lr_ratio, warmup_steps, cosine_steps, ...)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args):
    from cs336_basics.run_dir import RunDir
    from cs336_basics.train_config import load_sweep
    from cs336_basics.trainer import TrainingDiverged, train
    from cs336_common.lock import DirectoryLocked

    if args.allow_schedule_change and not args.resume:
        raise SystemExit("--allow-schedule-change goes with --resume RUN_DIR")
    if args.resume:
        if args.config or args.sweep:
            raise SystemExit("--resume RUN_DIR takes its config from the run; drop CONFIG/--sweep")
        source, overrides = RunDir(args.resume).config, [*args.set, f"out_dir={args.resume!r}"]
        if not source.is_file():
            raise SystemExit(f"--resume {args.resume}: {source} not found")
    elif args.config:
        source, overrides = args.config, args.set
    else:
        raise SystemExit("give a CONFIG file or shipped name, or --resume RUN_DIR")
    try:
        configs = load_sweep(source, overrides, args.sweep)
    except (ValueError, FileNotFoundError) as e:
        raise SystemExit(str(e)) from None

    failed = 0
    for config in configs:
        try:
            result = train(
                config,
                resume=bool(args.resume),
                progress=not args.no_progress,
                allow_schedule_change=args.allow_schedule_change,
            )
        except (TrainingDiverged, FileExistsError, FileNotFoundError, DirectoryLocked) as e:
            print(f"{config.out_dir}: {e}", file=sys.stderr)
            failed += 1
            continue
        if result.already_finished:
            print(
                f"{result.run_dir}: already finished ({result.steps} of {config.num_steps} "
                f"steps); to train longer: cs336-basics train --resume {result.run_dir} "
                "--set max_steps=N --allow-schedule-change"
            )
            continue
        val = "n/a" if result.val_loss is None else f"{result.val_loss:.4f}"
        print(
            f"{result.run_dir}: {result.steps} steps, {result.tokens:,} tokens, "
            f"train loss {result.train_loss:.4f}, val loss {val}, "
            f"{result.wall_time_s / 60:.1f} min"
        )
    return 1 if failed else 0
