"""Convert between our model directory (cs336_model.json, model.safetensors, our
tokenizer.json) and a Hugging Face LlamaForCausalLM directory, in either direction
(the direction follows from what SRC holds). The logits are equal either way.

Example:
  cs336-alignment export runs/grpo/final hf-model
  python -c "from transformers import pipeline; print(pipeline('text-generation', 'hf-model')('2+2='))"
"""

from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "src", metavar="SRC", help="model directory to convert (ours or Hugging Face Llama)"
    )
    p.add_argument(
        "dst", metavar="DST", help="output directory (created; must not exist or be empty)"
    )


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from cs336_alignment.policy_io import check_model_dir
    from cs336_common.checks import check_output
    from cs336_common.errors import InputError

    src = check_model_dir(args.src, flag="SRC")
    dst = check_output(args.dst, inputs=[src], flag="DST", directory=True)
    if dst.exists() and any(Path(dst).iterdir()):
        raise InputError(f"{dst}: exists and is not empty; choose a new folder")
    try:  # a model with no equivalent on the other side: one line, not a traceback
        _convert_atomically(src, dst)
    except InputError:
        raise
    except ValueError as e:
        raise InputError(f"{src}: {e}") from None
    print(f"wrote {dst}")
    return 0


def _convert_atomically(src, dst) -> None:
    """Convert into a hidden folder beside ``dst``, renamed to ``dst`` once complete: an
    error or Ctrl-C leaves no half-written model (and nothing that blocks a retry)."""
    import os
    import secrets
    import shutil

    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f".{dst.name}.{secrets.token_hex(6)}.tmp")
    tmp.mkdir()
    try:
        _convert(src, tmp)
        if dst.exists():
            dst.rmdir()  # empty: checked before converting
        os.replace(tmp, dst)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _convert(src, dst) -> None:
    from cs336_alignment.hf_export import export_to_hf, import_from_hf
    from cs336_alignment.policy_io import is_our_dir, load_policy, save_policy
    from cs336_common.errors import InputError

    if is_our_dir(src):
        model, tokenizer = load_policy(src)
        export_to_hf(model, tokenizer, dst)
        return
    model, tokenizer = import_from_hf(src)
    if tokenizer is None:
        raise InputError(f"{src}: no tokenizer.json to convert")
    save_policy(model, tokenizer, dst)
