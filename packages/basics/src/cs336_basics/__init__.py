"""cs336-basics: BPE tokenizer training, Transformer LM training and generation."""

import importlib

# The public API, imported lazily (PEP 562) so that `cs336-basics --help` stays instant.
_LAZY = {
    "train_bpe": "cs336_basics.bpe",
    "encode_file": "cs336_basics.tokenize_file",
}

__all__ = list(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'cs336_basics' has no attribute {name!r}")
