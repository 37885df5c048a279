"""Train a BPE tokenizer and a small Transformer LM end to end on English text shipped
with the package (the BSD fortune database), then print the validation loss against the
unigram entropy of the validation tokens, and a few sampled continuations.

The model and its training settings are the shipped config `quickstart`
(configs/quickstart.toml, read like `cs336-basics train` reads any config). Runs
offline, on the GPU when one is present, in a few minutes on 2 CPU cores. Writes into
--out: train/val text, tokenizer/, train.bin/val.bin, lm/ (the training run:
config, metrics, checkpoint) and loss.png. Afterwards, sample more with
  cs336-basics generate --run runs/quickstart/lm --prompt "Love is" --top-p 0.9
"""

from __future__ import annotations

from cs336_common.cli import positive_int


def add_arguments(parser):
    parser.add_argument(
        "--out", default="runs/quickstart", help="output directory (default %(default)s)"
    )
    parser.add_argument(
        "--steps", type=positive_int, default=None, help="training steps (default 400)"
    )
    parser.add_argument(
        "--device", default="auto", help="auto (cuda > mps > cpu, the default), cpu, cuda"
    )
    parser.add_argument("--seed", type=int, default=0, help="default %(default)s")
    parser.add_argument(
        "--threads",
        type=positive_int,
        default=None,
        help="CPU threads for torch (default: one per core); on a busy shared machine "
        "--threads 1 avoids threads waiting on each other and is often several times faster",
    )


def run(args):
    import torch

    from cs336_basics.quickstart import QuickstartConfig, run_quickstart

    if args.threads is not None:
        torch.set_num_threads(args.threads)

    config = QuickstartConfig(out_dir=args.out, device=args.device, seed=args.seed)
    if args.steps is not None:
        n = args.steps
        config.train = [f"max_steps={n}", f"eval_every={max(1, n // 5)}"]
        config.train += [f"warmup_steps={max(1, n // 20)}", f"checkpoint_every={n}"]
    result = run_quickstart(config)
    if not result.val_loss < result.unigram_entropy:
        print("warning: the validation loss is not below the unigram entropy; train longer")
        return 1
    return 0
