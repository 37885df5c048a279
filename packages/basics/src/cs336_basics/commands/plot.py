"""Plot learning curves of training runs: loss against steps (or tokens) and against
wall-clock time, several runs on one figure (learning-rate, batch-size and ablation
studies).

Examples:
  cs336-basics plot runs/tinystories --out tinystories.png
  cs336-basics plot runs/lr_sweep/* --out lr_sweep.png --log-y
  cs336-basics plot runs/batch_size_sweep/* --x-axis tokens --out batch_size.png
"""


def add_arguments(parser):
    parser.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="training run directories")
    parser.add_argument(
        "--out",
        required=True,
        help="image to write; its suffix picks the format (.png, .pdf, .svg)",
    )
    parser.add_argument(
        "--x-axis", choices=["step", "tokens"], default="step", help="default %(default)s"
    )
    parser.add_argument("--log-y", action="store_true", help="logarithmic loss axis")
    parser.add_argument("--title", default=None, help="figure title (default: none)")


def run(args):
    from cs336_basics.plot import plot_runs

    out = plot_runs(args.run_dirs, args.out, x_axis=args.x_axis, log_y=args.log_y, title=args.title)
    print(out)
