"""cs336-basics: BPE tokenizer, Transformer LM training and generation (CS336 assignment 1).

The public API is re-exported lazily (PEP 562): importing the package, e.g. for the CLI's
``--help``, does not import torch.
"""

from __future__ import annotations

import importlib

# name -> module that defines it
_EXPORTS = {
    # training
    "cross_entropy": "cs336_common.train.loss",
    "AdamW": "cs336_common.train.optim",
    "get_lr_cosine_schedule": "cs336_common.train.schedule",
    "gradient_clipping": "cs336_common.train.clipping",
    "get_batch": "cs336_common.train.batches",
    "save_checkpoint": "cs336_common.train.checkpoint",
    "load_checkpoint": "cs336_common.train.checkpoint",
    "TrainConfig": "cs336_basics.train_config",
    "load_train_config": "cs336_basics.train_config",
    "TrainResult": "cs336_basics.trainer",
    "TrainingDiverged": "cs336_basics.trainer",
    "train": "cs336_basics.trainer",
    "load_trained_model": "cs336_basics.trainer",
    # tokenizer
    "train_bpe": "cs336_basics.bpe",
    "encode_file": "cs336_basics.corpus_encoding",
    # generation
    "generate": "cs336_basics.generation",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'cs336_basics' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
