"""Train a quality classifier (fastText, "wiki" vs "cc") from labelled text.

Each non-empty line of --positives / --negatives is one document. The result is used with
`cs336-data classify --quality-model MODEL` or $CS336_QUALITY_MODEL.

example: cs336-data quality train --positives wiki.txt --negatives cc.txt --out quality.bin"""

import argparse
from pathlib import Path

from cs336_common.cli import positive_int
from cs336_data.commands._common import expected_errors


def add_arguments(parser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    t = sub.add_parser("train", help="train a fastText wiki/cc model", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    t.add_argument(
        "--positives", required=True, type=Path, help="high-quality text, one doc a line"
    )
    t.add_argument("--negatives", required=True, type=Path, help="low-quality text, one doc a line")
    t.add_argument("--out", required=True, type=Path, help="model file to write")
    t.add_argument("--epoch", type=positive_int, default=10, help="training epochs (10)")
    t.add_argument("--no-quantize", action="store_true", help="keep the full-size model")


def run(args) -> int:
    from cs336_common.checks import check_output
    from cs336_data.quality import train_quality_model

    def go():
        for f in (args.positives, args.negatives):
            if not f.is_file():
                raise FileNotFoundError(f"{f}: no such file")
        check_output(args.out, inputs=[args.positives, args.negatives])
        n = train_quality_model(args.positives, args.negatives, args.out,
                                epoch=args.epoch, quantize=not args.no_quantize)  # fmt: skip
        print(f"trained on {n} documents -> {args.out}")

    expected_errors(go)
    return 0
