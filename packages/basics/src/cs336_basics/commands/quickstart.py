"""Train a BPE tokenizer and a small Transformer LM end to end on text shipped with
the package, then print the loss against the unigram entropy and a few samples.

Runs offline, on the GPU when one is present, in minutes on a laptop CPU."""


def add_arguments(parser):
    parser.add_argument("--out", default="runs/quickstart", help="run directory")


def run(args):
    print(f"quickstart will train a tokenizer and an LM into {args.out} (not built yet)")
