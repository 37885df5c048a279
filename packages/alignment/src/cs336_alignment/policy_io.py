"""Reading and writing policies: a Hugging Face model directory (``config.json`` with a
``model_type``) or our own (``cs336_model.json`` + ``model.safetensors`` + our
``tokenizer.json``), so every command takes either with ``--model DIR``."""

from __future__ import annotations

from pathlib import Path

import torch

from cs336_common.errors import InputError
from cs336_common.io import atomic_path, write_text_atomic

OUR_CONFIG = "cs336_model.json"
WEIGHTS = "model.safetensors"


def is_our_dir(path: str | Path) -> bool:
    return (Path(path) / OUR_CONFIG).is_file()


def check_model_dir(path: str | Path, flag: str = "--model") -> Path:
    """``path`` if it holds a model of either kind, else a one-line InputError naming
    ``flag``, the argument that gave it."""
    path = Path(path)
    if not path.is_dir():
        raise InputError(f"{flag} {path}: no such directory")
    if not is_our_dir(path) and not (path / "config.json").is_file():
        raise InputError(f"{flag} {path}: neither {OUR_CONFIG} (ours) nor config.json (HF)")
    return path


def save_policy(model, tokenizer, directory: str | Path) -> Path:
    """Write our `TransformerLM` and `Tokenizer` to ``directory`` (atomically per file)."""
    from safetensors.torch import save_file

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    if model.config.tie_embeddings:
        state.pop("token_embeddings.weight")
    with atomic_path(directory / WEIGHTS) as tmp:
        save_file(state, str(tmp))
    tokenizer.save(directory)
    write_text_atomic(directory / OUR_CONFIG, model.config.to_json() + "\n")
    return directory


def load_policy(directory: str | Path, device: str | torch.device = "cpu", dtype=None):
    """(model, tokenizer) from a directory of either kind; models come back in eval mode."""
    directory = check_model_dir(directory)
    if is_our_dir(directory):
        from safetensors.torch import load_file

        from cs336_common import ModelConfig, Tokenizer, TransformerLM

        try:
            cfg = ModelConfig.from_json((directory / OUR_CONFIG).read_text(encoding="utf-8"))
        except (ValueError, TypeError) as e:
            raise InputError(f"{directory / OUR_CONFIG}: {e}") from None
        model = TransformerLM.from_config(cfg, device=device, dtype=dtype)
        state = load_file(str(directory / WEIGHTS), device=str(device))
        if cfg.tie_embeddings:
            state["token_embeddings.weight"] = state["lm_head.weight"]
        model.load_state_dict(state)
        return model.eval(), Tokenizer.load(directory)
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(directory, dtype=dtype or "auto")
    tok = AutoTokenizer.from_pretrained(directory)
    return model.to(device).eval(), tok
