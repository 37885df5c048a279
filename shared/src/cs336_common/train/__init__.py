"""Training primitives every package trains with: loss, optimizer, schedule, clipping,
batches, checkpoints, token files, metrics and interrupt handling, one concept per file,
and `TrainLoop` (``loop``), the training loop built on them.

Names are re-exported lazily (PEP 562), so importing e.g. ``cs336_common.train.token_file``
for a tokenizing job does not pay for the rest.
"""

import importlib

# name -> module that defines it
_EXPORTS = {
    "cross_entropy": "cs336_common.train.loss",
    "linear_cross_entropy": "cs336_common.train.linear_loss",
    "AdamW": "cs336_common.train.optim",
    "get_lr_cosine_schedule": "cs336_common.train.schedule",
    "gradient_clipping": "cs336_common.train.clipping",
    "get_batch": "cs336_common.train.batches",
    "RandomBatches": "cs336_common.train.batches",
    "save_checkpoint": "cs336_common.train.checkpoint",
    "load_checkpoint": "cs336_common.train.checkpoint",
    "open_token_file": "cs336_common.train.token_file",
    "save_token_file": "cs336_common.train.token_file",
    "write_token_file_meta": "cs336_common.train.token_file",
    "token_dtype": "cs336_common.train.token_file",
    "deferred_interrupt": "cs336_common.train.interrupt",
    "Interrupted": "cs336_common.train.interrupt",
    "CheckpointDir": "cs336_common.train.checkpoint",
    "TrainLoop": "cs336_common.train.loop",
    "LoopConfig": "cs336_common.train.loop",
    "LoopResult": "cs336_common.train.loop",
    "TrainingDiverged": "cs336_common.train.loop",
    "lm_loss": "cs336_common.train.loop",
    "fused_lm_loss": "cs336_common.train.loop",
    "MetricsLog": "cs336_common.train.metrics",
    "model_flops_utilization": "cs336_common.train.metrics",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'cs336_common.train' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
