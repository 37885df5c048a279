"""Evaluate a model on a benchmark and write what it answered.

Tasks: gsm8k (shipped test set), math (--data: JSONL with problem and answer/solution),
mmlu (shipped test set), alpaca_eval (--data: the AlpacaEval JSONL), sst
(SimpleSafetyTests, shipped), arithmetic (the package's generated word problems).

Writes to --out: metrics.json (accuracy, format_error_rate, n, mean response length),
examples.jsonl (every prompt, response, ground truth, score) and one JSONL per category
(correct, wrong_answer, format_error). AlpacaEval also gets alpaca_eval_outputs.json
(the annotator's input format) and sst gets sst_outputs.jsonl (prompts_final, output),
for judging by a separate model.

Example:
  cs336-alignment eval gsm8k --model runs/qwen-math --out evals/gsm8k --limit 200
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from cs336_alignment.generation import GENERATORS
from cs336_alignment.prompt_templates import PROMPT_NAMES
from cs336_common.cli import non_negative_float, positive_int, probability

TASK_NAMES = ("gsm8k", "math", "mmlu", "alpaca_eval", "sst", "arithmetic")
# what _write may write into --out (one JSONL per `evaluate.category`)
OUTPUTS = ("metrics.json", "examples.jsonl", "correct.jsonl", "wrong_answer.jsonl",
           "format_error.jsonl", "ungraded.jsonl", "alpaca_eval_outputs.json",
           "sst_outputs.jsonl")  # fmt: skip


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("task", choices=TASK_NAMES, help="benchmark to run")
    p.add_argument("--model", required=True, help="model directory (Hugging Face or ours)")
    p.add_argument("--out", required=True, help="output folder (created)")
    p.add_argument("--data", help="examples file (required for math and alpaca_eval)")
    p.add_argument("--prompt", choices=PROMPT_NAMES,
                   help="prompt template (default: the task's; gsm8k and math take any, the "
                   "other tasks only their own)")  # fmt: skip
    p.add_argument(
        "--limit", type=positive_int, help="evaluate only the first N examples (default: all)"
    )
    p.add_argument("--generator", choices=GENERATORS, default=None,
                   help="sampler: engine (ours, default for our models), hf, vllm (HF models; "
                   "needs the cs336-alignment[vllm] extra and a GPU)")  # fmt: skip
    p.add_argument(
        "--batch-size", type=positive_int, default=64, help="prompts per call (default %(default)s)"
    )
    p.add_argument("--max-new-tokens", type=positive_int, default=512, help="default %(default)s")
    p.add_argument("--temperature", type=non_negative_float, default=0.0,
                   help="0 (default) is greedy")  # fmt: skip
    p.add_argument("--top-p", type=probability, default=1.0, help="default %(default)s: off")
    p.add_argument("--seed", type=int, default=0, help="default %(default)s")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, mps")


def run(args: argparse.Namespace) -> int:
    from cs336_alignment.policy_io import check_model_dir
    from cs336_alignment.tasks import TASKS
    from cs336_common.checks import check_output
    from cs336_common.errors import UsageError

    from ._common import check_paths

    task = TASKS[args.task]
    model_dir = check_model_dir(args.model)
    out = check_paths(args.out, [args.data], model_dir)
    for name in OUTPUTS:  # --data may lie in --out, e.g. a previous run's examples.jsonl
        check_output(out / name, inputs=[args.data] if args.data else [])
    prompt = args.prompt or task.default_prompt
    if prompt not in (*task.prompts, task.default_prompt):
        raise UsageError(
            f"--prompt {prompt} does not apply to task {args.task}, which always uses "
            f"{task.default_prompt}"
        )
    if args.task in ("math", "alpaca_eval") and args.data is None:
        raise UsageError(f"task {args.task} needs --data (its data is not shipped)")
    examples = task.load(args.data, prompt)[: args.limit]
    metrics, records = _evaluate(args, model_dir, examples, task, prompt)
    _write(out, args, metrics, records, examples)
    shown = {k: v for k, v in metrics.items() if v is not None}
    print(json.dumps(shown))
    return 0


def _evaluate(args, model_dir, examples, task, prompt):
    from cs336_alignment.evaluate import generate_and_score
    from cs336_alignment.policy_io import load_policy
    from cs336_common.device import resolve_device
    from cs336_common.engine import SamplingParams

    from ._common import policy_generator

    device = resolve_device(args.device)
    model, tokenizer = load_policy(model_dir, device)
    _check_context(model, tokenizer, examples, args.max_new_tokens)
    generator = policy_generator(args.generator, model_dir, model, tokenizer, device)
    params = SamplingParams(
        max_new_tokens=args.max_new_tokens,
        temperature=args.temperature,
        top_p=args.top_p,
        stop=task.stop,
        seed=args.seed,
    )
    return generate_and_score(
        generator, examples, task.score(prompt), params, args.batch_size, progress=True
    )


def _check_context(model, tokenizer, examples, max_new_tokens: int) -> None:
    """Our models have a fixed context: refuse prompts that cannot fit before sampling."""
    from cs336_alignment.generation import is_hf_model
    from cs336_alignment.text_tokenizer import as_text_tokenizer
    from cs336_common.errors import InputError

    if is_hf_model(model):
        return
    tok, ctx = as_text_tokenizer(tokenizer), model.config.context_length
    longest = max((len(tok.encode(ex["prompt"])), i) for i, ex in enumerate(examples))
    if longest[0] >= ctx:
        raise InputError(
            f"example {longest[1] + 1}'s prompt has {longest[0]} tokens; the model's "
            f"context_length is {ctx} (use --limit or a model with a longer context)"
        )


def _write(out: Path, args, metrics, records, examples) -> None:
    from cs336_alignment.evaluate import category
    from cs336_common.io import write_text_atomic

    out.mkdir(parents=True, exist_ok=True)
    meta = {"task": args.task, "model": str(args.model), "prompt": args.prompt, **metrics}
    write_text_atomic(out / "metrics.json", json.dumps(meta, indent=2) + "\n")
    lines = {"examples": []}
    for r in records:
        r = {**r, "category": category(r)}
        lines["examples"].append(r)
        lines.setdefault(r["category"], []).append(r)
    for name, rows in lines.items():
        text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
        write_text_atomic(out / f"{name}.jsonl", text)
    if args.task == "alpaca_eval":
        outputs = [
            {**ex["example"], "output": r["response"], "generator": Path(args.model).name}
            for ex, r in zip(examples, records, strict=True)
        ]
        write_text_atomic(out / "alpaca_eval_outputs.json", json.dumps(outputs, indent=1) + "\n")
    if args.task == "sst":
        text = "".join(
            json.dumps({"prompts_final": ex["example"]["prompts_final"], "output": r["response"]})
            + "\n"
            for ex, r in zip(examples, records, strict=True)
        )
        write_text_atomic(out / "sst_outputs.jsonl", text)
