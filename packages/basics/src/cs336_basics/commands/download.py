"""Fetch the course's public datasets (needs internet; nothing else in the package does).

  tinystories  TinyStoriesV2-GPT4-{train,valid}.txt (about 2.2 GB) from huggingface.co/roneneldan
  owt          owt_{train,valid}.txt, an OpenWebText sample (about 12 GB unpacked) from
               huggingface.co/stanford-cs336

Interrupted downloads resume where they stopped when the command is run again.

Examples:
  cs336-basics data download tinystories --out data/tinystories
  cs336-basics data download owt --out data/owt
"""


def add_arguments(parser):
    sub = parser.add_subparsers(dest="data_command", metavar="ACTION", required=True)
    p = sub.add_parser("download", help="download a dataset's text files")
    p.add_argument("dataset", choices=["tinystories", "owt"])
    p.add_argument("--out", required=True, help="destination folder")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def run(args):
    import urllib.error

    from cs336_basics.download import download_dataset
    from cs336_common.checks import check_output
    from cs336_common.cli import one_line
    from cs336_common.errors import UserError

    check_output(args.out, directory=True)
    try:
        for path in download_dataset(args.dataset, args.out, progress=not args.no_progress):
            print(path)
    except OSError as e:  # no network, DNS, HTTP errors, a cut connection: the user can retry
        reason = e.reason if isinstance(e, urllib.error.URLError) else one_line(e)
        raise UserError(f"download failed: {reason}; run it again to resume") from e
