"""Tokenize document shards into one token file (np.memmap-able ids + JSON sidecar).

Each document's ids are followed by <|endoftext|>. GPT-2's vocabulary by default (uint16
ids); --tokenizer names a directory saved by `cs336-basics tokenizer train`.

example: cs336-data tokenize dedup/ -o tokens.bin"""

from pathlib import Path

from cs336_data.commands._common import expected_errors
from cs336_data.executor import add_executor_arguments


def add_arguments(parser) -> None:
    parser.add_argument("inputs", nargs="+", metavar="INPUT", help="JSONL(.gz) document shards")
    parser.add_argument("-o", "--out", required=True, type=Path, help="token file to write")
    parser.add_argument("--tokenizer", default="gpt2",
                        help="'gpt2' or a tokenizer directory (gpt2)")  # fmt: skip
    add_executor_arguments(parser)


def run(args) -> int:
    from cs336_common.checks import check_output
    from cs336_data.executor import executor_config
    from cs336_data.stages import check_same_options, expand_inputs, tokenize_stage
    from cs336_data.tokenize_stage import load_tokenizer

    def go():
        cfg = executor_config(args)
        inputs = expand_inputs(args.inputs)
        check_output(args.out, inputs=inputs)
        load_tokenizer(args.tokenizer)  # fail now on a bad tokenizer, not in the workers
        # finished shards' ids are kept: they must come from this tokenizer
        work, flag = args.out.parent / "_work_tokens", f"--out {args.out}: its work folder"
        check_same_options(work, {"tokenizer": args.tokenizer}, flag)
        n = tokenize_stage(inputs, args.out, cfg, args.tokenizer)
        print(f"{n} tokens -> {args.out}")

    expected_errors(go)
    return 0
