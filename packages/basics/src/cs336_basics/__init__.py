"""cs336-basics: BPE tokenizer, Transformer LM training and generation (CS336 assignment 1).

The public API is re-exported lazily (PEP 562): importing the package, e.g. for the CLI's
``--help``, does not import torch.
"""

from __future__ import annotations

import importlib

# name -> module that defines it
_EXPORTS = {
    # tokenizer
    "train_bpe": "cs336_basics.bpe",
    "encode_file": "cs336_basics.tokenize_file",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'cs336_basics' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
