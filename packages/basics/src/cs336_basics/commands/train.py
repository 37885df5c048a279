"""Train a Transformer LM from a config file: TOML (or YAML with PyYAML installed), or
the name of a shipped config. Each run writes config.json, metrics.jsonl and
checkpoints/ into its out_dir; plot them with `cs336-basics plot`.

Shipped configs: tinystories, tinystories_cpu, owt, ablation_no_rmsnorm,
ablation_post_norm, ablation_nope, ablation_silu, lr_sweep, batch_size_sweep, quickstart.
A config's `tokenizer` folder is copied into the run, so `generate --run` needs no
--tokenizer.

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
    import torch

    from cs336_basics.trainer import TrainingDiverged, train
    from cs336_common.cli import one_line
    from cs336_common.errors import UsageError, UserError

    if args.allow_schedule_change and not args.resume:
        raise UsageError("--allow-schedule-change goes with --resume RUN_DIR")
    configs = _load_configs(args)
    _check_runs(configs)
    failed = 0
    for config in configs:
        try:
            result = train(
                config,
                resume=bool(args.resume),
                progress=not args.no_progress,
                allow_schedule_change=args.allow_schedule_change,
            )
        except (TrainingDiverged, UserError, FileExistsError, FileNotFoundError) as e:
            if args.debug:
                raise
            print(f"{args.prog}: error: {config.out_dir}: {one_line(e)}", file=sys.stderr)
            failed += 1
            continue
        except (torch.cuda.OutOfMemoryError, RuntimeError) as e:
            message = _runtime_message(e)
            if args.debug or message is None:
                raise
            print(f"{args.prog}: error: {config.out_dir}: {message}", file=sys.stderr)
            failed += 1
            continue
        if result.already_finished:
            print(
                f"{result.run_dir}: already finished ({result.steps} of {config.num_steps} "
                f"steps); to train longer: cs336-basics train --resume {result.run_dir} "
                "--set max_steps=N --allow-schedule-change"
            )
            continue
        print(_result_line(result))
    return 1 if failed else 0


def _result_line(result) -> str:
    val = "n/a" if result.val_loss is None else f"{result.val_loss:.4f}"
    speed = ""
    if result.tokens_per_s is not None:
        mfu = "" if result.mfu is None else f", {result.mfu:.1%} MFU"
        speed = f", {result.tokens_per_s:,.0f} tokens/s{mfu}"
    return (
        f"{result.run_dir}: {result.steps} steps, {result.tokens:,} tokens, "
        f"train loss {result.train_loss:.4f}, val loss {val}, "
        f"{result.wall_time_s / 60:.1f} min{speed}"
    )


def _runtime_message(error: RuntimeError) -> str | None:
    """One line for the runtime errors a user causes: out of GPU memory, ``compile = true``
    without a C++ compiler, and a checkpoint whose weights do not fit the model of the
    run's config.json (torch's load_state_dict error, whose first detail names the
    tensor); None for any other, a bug."""
    import torch

    if isinstance(error, torch.cuda.OutOfMemoryError):
        return (
            "out of GPU memory; lower batch_size (raise grad_accum_steps to keep the tokens "
            "per step) or context_length"
        )
    if "InvalidCxxCompiler" in str(error):
        return (
            "compile = true, but torch.compile finds no working C++ compiler (gcc or clang; "
            "its CXX variable); install one or --set compile=false"
        )
    lines = str(error).splitlines()
    if not lines or not lines[0].startswith("Error(s) in loading state_dict"):
        return None
    detail = lines[1].strip() if len(lines) > 1 else ""
    return f"its checkpoint does not fit the model of its config.json ({detail}); was it edited?"


def _load_configs(args):
    from cs336_basics.run_dir import RunDir
    from cs336_basics.train_config import load_sweep
    from cs336_common.errors import InputError, UsageError

    if args.resume:
        if args.config or args.sweep:
            raise UsageError("--resume RUN_DIR takes its config from the run; drop CONFIG/--sweep")
        source, overrides = RunDir(args.resume).config, [*args.set, f"out_dir={args.resume!r}"]
        if not source.is_file():
            raise FileNotFoundError(f"--resume {args.resume}: {source} not found")
    elif args.config:
        source, overrides = args.config, args.set
    else:
        raise UsageError("give a CONFIG file or shipped name, or --resume RUN_DIR")
    try:
        return load_sweep(source, overrides, args.sweep)
    except ValueError as e:  # every mistake in a config file or --set/--sweep
        raise InputError(str(e)) from None


def _check_runs(configs) -> None:
    """The device, token files, tokenizer and run directory of every run, with the
    trainer's own checks, before the first starts: a mistake fails now, not hours into a
    sweep."""
    from cs336_basics.trainer import load_run_tokenizer, open_train_data
    from cs336_common.checks import check_output
    from cs336_common.device import resolve_device

    for config in configs:
        resolve_device(config.device)
        paths = [p for p in (config.train_data, config.val_data) if p is not None]
        check_output(config.out_dir, inputs=paths, flag="out_dir", directory=True)
        for path in paths:
            open_train_data(path, config.model)
        load_run_tokenizer(config)
