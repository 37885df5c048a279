"""Train a byte-level BPE tokenizer, or encode a text file into a token file.

`train` writes DIR/tokenizer.json (load it with `cs336_common.Tokenizer.load(DIR)`) and
DIR/summary.json (longest token, compression in bytes per token on a sample of the input).
`encode` writes a flat uint16/uint32 array of ids that `np.memmap` reads, plus FILE.json
with its dtype (`cs336_common.train.token_file.open_token_file`).

Examples:
  cs336-basics tokenizer train --input data/TinyStories-train.txt --vocab-size 10000 \\
      --special-token '<|endoftext|>' --out tokenizers/tinystories
  cs336-basics tokenizer encode --tokenizer tokenizers/tinystories \\
      --input data/TinyStories-train.txt --out data/tinystories-train.bin --workers 8
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from cs336_common.cli import positive_int

_SAMPLE_BYTES = 1 << 20  # compression is measured on the input's first MiB


def add_arguments(parser):
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    train = sub.add_parser(
        "train",
        help="train a BPE tokenizer on a UTF-8 text file",
        description="Train a byte-level BPE tokenizer (GPT-2 pre-tokenization) on a text file.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    train.add_argument("--input", required=True, help="UTF-8 text file")
    train.add_argument(
        "--vocab-size", type=positive_int, required=True, help="bytes + specials + merges"
    )
    train.add_argument(
        "--special-token",
        action="append",
        default=[],
        type=_special_token,
        metavar="TOKEN",
        help="a special token, e.g. '<|endoftext|>' (repeatable)",
    )
    train.add_argument("--out", required=True, help="directory for tokenizer.json")
    train.add_argument(
        "--workers", type=positive_int, default=None, help="processes (default: CPUs)"
    )
    train.set_defaults(_action=_train)

    encode = sub.add_parser(
        "encode",
        help="encode a UTF-8 text file into a token file",
        description="Encode a text file into a flat token file (+ FILE.json sidecar).",
    )
    encode.add_argument("--tokenizer", required=True, help="directory written by `train`")
    encode.add_argument("--input", required=True, help="UTF-8 text file")
    encode.add_argument("--out", required=True, help="token file to write, e.g. train.bin")
    encode.add_argument(
        "--workers", type=positive_int, default=None, help="processes (default: CPUs)"
    )
    encode.set_defaults(_action=_encode)


def _special_token(text: str) -> str:
    if not text:
        raise argparse.ArgumentTypeError("a special token cannot be empty")
    return text


def run(args):
    return args._action(args)


def _train(args):
    from cs336_basics.bpe import train_bpe
    from cs336_basics.text_chunks import check_input
    from cs336_common.checks import check_output
    from cs336_common.io import write_text_atomic
    from cs336_common.tokenizer import FILE_NAME, Tokenizer

    check_input(args.input)
    out = check_output(args.out, inputs=[args.input], directory=True)
    for name in (FILE_NAME, "summary.json"):
        check_output(out / name, inputs=[args.input])
    start = time.perf_counter()
    vocab, merges = train_bpe(
        args.input, args.vocab_size, args.special_token, num_workers=args.workers, progress=True
    )
    seconds = time.perf_counter() - start
    tokenizer = Tokenizer(vocab, merges, args.special_token)
    path = tokenizer.save(args.out)
    summary = _summary(tokenizer, Path(args.input), seconds)
    write_text_atomic(Path(args.out) / "summary.json", json.dumps(summary, indent=2) + "\n")
    print(f"wrote {path}")
    for key, value in summary.items():
        print(f"  {key}: {value}")


def _summary(tokenizer, input_path: Path, seconds: float) -> dict:
    vocab = tokenizer.vocab
    specials = {t.encode("utf-8") for t in tokenizer.special_tokens}
    longest = max((b for b in vocab.values() if b not in specials), key=len)
    with open(input_path, "rb") as f:
        sample = f.read(_SAMPLE_BYTES).decode("utf-8", errors="ignore")  # may cut a char
    num_bytes = len(sample.encode("utf-8"))
    num_tokens = len(tokenizer.encode(sample))
    return {
        "vocab_size": tokenizer.vocab_size,
        "merges": len(tokenizer.merges),
        "special_tokens": tokenizer.special_tokens,
        "longest_token": longest.decode("utf-8", errors="replace"),
        "longest_token_bytes": len(longest),
        "bytes_per_token": round(num_bytes / max(num_tokens, 1), 3),
        "sample_bytes": num_bytes,
        "train_seconds": round(seconds, 2),
    }


def _encode(args):
    from cs336_basics.corpus_encoding import encode_file
    from cs336_basics.text_chunks import check_input, resolve_workers
    from cs336_common.checks import check_output
    from cs336_common.tokenizer import FILE_NAME, Tokenizer
    from cs336_common.train.token_file import token_dtype

    tokenizer = Tokenizer.load(args.tokenizer)
    tokenizer_file = Path(args.tokenizer)
    inputs = [check_input(args.input), tokenizer_file, tokenizer_file / FILE_NAME]
    check_output(args.out, inputs=inputs)
    check_output(f"{args.out}.json", inputs=inputs)
    start = time.perf_counter()
    num_tokens = encode_file(
        tokenizer, args.input, args.out, num_workers=args.workers, progress=True
    )
    seconds = time.perf_counter() - start
    megabytes = Path(args.input).stat().st_size / 1e6
    print(
        f"wrote {args.out}: {num_tokens:,} tokens ({token_dtype(tokenizer.vocab_size).name}) "
        f"from {megabytes:.1f} MB in {seconds:.2f} s: {megabytes / seconds:.2f} MB/s with "
        f"{resolve_workers(args.workers)} worker(s), "
        f"{1e6 * megabytes / max(num_tokens, 1):.2f} bytes/token"
    )
