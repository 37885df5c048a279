"""Sample continuations of one or more prompts from a trained run.

The prompts run as one batch on a KV cache; each stops at the end-of-text token, after
--max-new-tokens tokens, or at the model's context length. --temperature 0 is greedy;
--top-p < 1 samples from the nucleus.

Examples:
  cs336-basics generate --run runs/quickstart/lm --tokenizer runs/quickstart/tokenizer \\
      --prompt "Once upon a time" --prompt "The" --max-new-tokens 64 --top-p 0.9 --seed 0
"""

from __future__ import annotations


def add_arguments(parser):
    parser.add_argument("--run", required=True, help="training run directory")
    parser.add_argument("--tokenizer", required=True, help="tokenizer directory (Tokenizer.save)")
    parser.add_argument(
        "--prompt",
        action="append",
        required=True,
        help="prompt text; repeat for a batch (an empty prompt starts a new document)",
    )
    parser.add_argument("--max-new-tokens", type=int, default=128)
    parser.add_argument("--temperature", type=float, default=1.0, help="0: greedy")
    parser.add_argument("--top-p", type=float, default=1.0, help="nucleus mass in (0, 1]")
    parser.add_argument(
        "--eos-token",
        default="<|endoftext|>",
        help="special token that ends a continuation ('' or absent from the tokenizer: none)",
    )
    parser.add_argument("--seed", type=int, default=None, help="makes sampling reproducible")
    parser.add_argument("--device", default="auto", help="auto (cuda > mps > cpu), cpu, cuda, ...")


def run(args):
    from cs336_basics.generation import generate
    from cs336_basics.trainer import load_trained_model
    from cs336_common.device import resolve_device
    from cs336_common.tokenizer import Tokenizer

    tokenizer = Tokenizer.load(args.tokenizer)
    model = load_trained_model(args.run, device=resolve_device(args.device))
    eos = args.eos_token if args.eos_token in tokenizer.special_tokens else None
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
