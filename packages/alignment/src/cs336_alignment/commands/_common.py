"""Flags and setup shared by the training commands."""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Iterator
from pathlib import Path

from cs336_alignment.generation import GENERATORS
from cs336_common.cli import positive_int


def add_policy_args(p: argparse.ArgumentParser, data_help: str, eval_data: bool = True) -> None:
    p.add_argument("--model", required=True, help="starting policy: HF or our model directory")
    p.add_argument("--out", required=True, help="run folder (metrics, curves, checkpoints)")
    p.add_argument("--data", help=data_help + " (default: generated arithmetic problems)")
    p.add_argument("--examples", type=positive_int, default=4096,
                   help="generated examples when --data is not given (default %(default)s)")  # fmt: skip
    if eval_data:
        p.add_argument("--eval-data", help="held-out questions JSONL (question+answer or "
                       "prompt+ground_truth); default: generated arithmetic problems")  # fmt: skip
        p.add_argument(
            "--eval-limit",
            type=positive_int,
            default=256,
            help="held-out examples (default %(default)s)",
        )
    p.add_argument("--generator", choices=GENERATORS, default=None,
                   help="rollout sampler (default: engine for our models, hf for HF ones; "
                   "vllm: HF models, needs the cs336-alignment[vllm] extra and a GPU)")  # fmt: skip
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, mps")
    p.add_argument("--resume", action="store_true", help="continue the run in --out")


def setup(args: argparse.Namespace, inputs=(), cfg=None):
    """Check paths (and, with --resume, that ``cfg`` may continue the run in --out)
    first, then load (policy, tokenizer, generator, out)."""
    from cs336_alignment.policy_io import check_model_dir, load_policy
    from cs336_common.device import resolve_device

    model_dir = check_model_dir(args.model)
    out = check_paths(args.out, inputs, model_dir)
    if args.resume and cfg is not None:
        check_resume(out, cfg)
    device = resolve_device(args.device)
    policy, tokenizer = load_policy(model_dir, device)
    policy.train()
    generator = policy_generator(args.generator, model_dir, policy, tokenizer, device)
    return policy, tokenizer, generator, out


def check_paths(out: str, inputs=(), model_dir: Path | None = None) -> Path:
    """The output folder ``out``, once every given input file exists and ``out`` may be
    written without replacing one of them or the ``--model`` directory."""
    from cs336_common.checks import check_output
    from cs336_common.errors import UserError

    inputs = [p for p in inputs if p is not None]
    for path in inputs:
        if Path(path).is_dir():
            raise UserError(f"{path} is a folder; expected a data file")
        if not Path(path).is_file():
            raise FileNotFoundError(2, "No such file or directory", path)
    if model_dir is not None and Path(out).resolve() == model_dir.resolve():
        raise UserError(f"--out {out} is the --model directory; it would be overwritten")
    return Path(check_output(out, inputs=inputs, directory=True))


# what a resumed run may change: its length and how often it evaluates and checkpoints
_FREE_ON_RESUME = ("steps", "n_grpo_steps", "eval_every", "eval_max_tokens", "checkpoint_every")


def check_resume(out: Path, cfg) -> None:
    """Refuse to resume the run in ``out`` (its config.json) with settings of another
    command, or with other settings than those it was trained with."""
    import dataclasses

    from cs336_common.checks import read_json
    from cs336_common.errors import UserError

    saved_file = out / "config.json"
    if not saved_file.is_file():
        return
    saved, current = read_json(saved_file, "run config"), dataclasses.asdict(cfg)
    if not isinstance(saved, dict) or saved.keys() != current.keys():
        raise UserError(
            f"--resume: {saved_file} holds the settings of another command's run, not "
            f"{type(cfg).__name__}; choose another --out"
        )
    changed = [f"{k} {saved[k]!r} -> {v!r}" for k, v in current.items()
               if saved[k] != v and k not in _FREE_ON_RESUME]  # fmt: skip
    if changed:
        raise UserError(
            f"--resume: {', '.join(changed)}; a resumed run keeps its settings (its length "
            "and eval/checkpoint cadence may change); start a new run in another --out"
        )


def policy_generator(kind: str | None, model_dir: Path, policy, tokenizer, device):
    """The ``--generator`` sampler (default: engine for our models, hf for HF ones); vLLM
    loads the model from ``model_dir`` itself."""
    from cs336_alignment.generation import is_hf_model, make_generator

    kind = kind or ("hf" if is_hf_model(policy) else "engine")
    if kind == "vllm":
        return make_generator(kind, model_dir, tokenizer)
    return make_generator(kind, policy, tokenizer, device)


def eval_questions(args) -> list[dict]:
    from cs336_alignment.training_data import questions

    return questions(args.eval_data, None, args.eval_limit, seed=999)[: args.eval_limit]


@contextlib.contextmanager
def training_run(out: Path) -> Iterator[None]:
    """Hold ``out``'s lock while training (a second process on it stops at once) and
    report divergence as one line."""
    from cs336_common.errors import UserError
    from cs336_common.lock import locked_dir
    from cs336_common.train.loop import TrainingDiverged

    with locked_dir(out):
        try:
            yield
        except TrainingDiverged as e:
            raise UserError(str(e)) from None
        except RuntimeError as e:  # torch's load_state_dict: a checkpoint of another model
            if not str(e).startswith("Error(s) in loading state_dict"):
                raise
            raise UserError(
                f"{out}: its checkpoint does not fit --model (was the run started from "
                "another model?)"
            ) from None
