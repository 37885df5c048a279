"""Sample continuations of one or more prompts from a trained run.

The prompts run as one batch on a KV cache; each stops at the end-of-text token, after
--max-new-tokens tokens, or at the model's context length. --temperature 0 is greedy;
--top-p < 1 samples from the nucleus.

A run trained with a tokenizer keeps a copy in RUN/tokenizer, which is used unless
--tokenizer names another.

Examples:
  cs336-basics generate --run runs/quickstart/lm \\
      --prompt "Once upon a time" --prompt "The" --max-new-tokens 64 --top-p 0.9 --seed 0
"""

from __future__ import annotations

from pathlib import Path

from cs336_common.cli import non_negative_float, non_negative_int, probability


def add_arguments(parser):
    parser.add_argument("--run", required=True, help="training run directory")
    parser.add_argument(
        "--tokenizer",
        default=None,
        help="tokenizer directory (Tokenizer.save); default: the copy in the run directory",
    )
    parser.add_argument(
        "--prompt",
        action="append",
        required=True,
        help="prompt text; repeat for a batch (an empty prompt starts a new document)",
    )
    parser.add_argument(
        "--max-new-tokens", type=non_negative_int, default=128, help="default %(default)s"
    )
    parser.add_argument(
        "--temperature",
        type=non_negative_float,
        default=1.0,
        help="0: greedy (default %(default)s)",
    )
    parser.add_argument(
        "--top-p",
        type=probability,
        default=1.0,
        help="nucleus mass in (0, 1] (default %(default)s: off)",
    )
    parser.add_argument(
        "--eos-token",
        default="<|endoftext|>",
        help="special token that ends a continuation ('' or absent from the tokenizer: none; "
        "default %(default)s)",
    )
    parser.add_argument(
        "--seed", type=int, default=None, help="makes sampling reproducible (default: none)"
    )
    parser.add_argument(
        "--device", default="auto", help="auto (cuda > mps > cpu, the default), cpu, cuda, ..."
    )


def run(args):
    from cs336_basics.generation import generate
    from cs336_basics.run_dir import RunDir
    from cs336_common.device import resolve_device
    from cs336_common.tokenizer import Tokenizer

    if not Path(args.run).is_dir():
        raise FileNotFoundError(f"--run {args.run}: no such training run directory")
    if not RunDir(args.run).config.is_file():
        raise FileNotFoundError(
            f"--run {args.run}: {RunDir(args.run).config} not found; not a training run directory"
        )
    tokenizer = Tokenizer.load(_tokenizer_path(args))
    model = _load_model(args.run, resolve_device(args.device))
    eos = args.eos_token if args.eos_token in tokenizer.special_tokens else None
    _check_fits(args, tokenizer, model, eos)
    outputs = generate(
        model,
        tokenizer,
        args.prompt,
        args.max_new_tokens,
        temperature=args.temperature,
        top_p=args.top_p,
        eos_token=eos,
        seed=args.seed,
    )
    for prompt, text in zip(args.prompt, outputs, strict=True):
        print(f"{prompt}{text}\n{'-' * 40}")


def _tokenizer_path(args) -> str:
    """--tokenizer, else the copy a run keeps when its config names a tokenizer."""
    from cs336_basics.run_dir import RunDir
    from cs336_common.errors import UsageError
    from cs336_common.tokenizer import FILE_NAME

    if args.tokenizer is None:
        kept = RunDir(args.run).tokenizer
        args.tokenizer = str(kept)
        if not (kept / FILE_NAME).is_file():
            raise UsageError(
                f"--run {args.run} keeps no tokenizer (its config names none); pass --tokenizer DIR"
            )
    return args.tokenizer


def _load_model(run_dir: str, device):
    """The run's model; a run without config or checkpoint, or one that does not load,
    is a `UserError` naming the file."""
    import pickle
    import zipfile

    from cs336_basics.run_dir import RunDir
    from cs336_basics.trainer import load_trained_model
    from cs336_common.cli import one_line
    from cs336_common.errors import UserError

    run = RunDir(run_dir)
    try:
        return load_trained_model(run.path, device=device)
    except (UserError, FileNotFoundError):
        raise
    except (RuntimeError, EOFError, KeyError, TypeError, ValueError, pickle.UnpicklingError,
            zipfile.BadZipFile) as e:  # fmt: skip
        raise UserError(
            f"--run {run_dir}: cannot load its model from {run.config.name} and "
            f"{run.latest_checkpoint()}: {one_line(e)[:300]}"
        ) from e


def _check_fits(args, tokenizer, model, eos: str | None) -> None:
    """Refuse a tokenizer that does not match the model, and prompts that do not fit in
    its context, before sampling anything."""
    from cs336_common.errors import UserError

    cfg = model.config
    if tokenizer.vocab_size != cfg.vocab_size:  # smaller: the model samples ids it lacks
        raise UserError(
            f"--tokenizer {args.tokenizer} has {tokenizer.vocab_size} tokens but the model of "
            f"--run {args.run} has vocab_size={cfg.vocab_size}: not the tokenizer it was "
            "trained with"
        )
    for i, prompt in enumerate(args.prompt, 1):
        n = len(tokenizer.encode(prompt)) or (1 if eos else 0)
        if n == 0:
            raise UserError(
                f"--prompt {i} is empty but the tokenizer has no --eos-token "
                f"{args.eos_token!r} to start a document from"
            )
        if n > cfg.context_length:
            raise UserError(
                f"--prompt {i} is {n} tokens long; the model of --run {args.run} reads at most "
                f"context_length={cfg.context_length}"
            )
