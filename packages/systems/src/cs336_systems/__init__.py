"""cs336-systems: benchmarking, FlashAttention-2 in Triton, and distributed training.

Exports are lazy (PEP 562) so that ``cs336-systems --help`` does not import torch.
"""

from importlib import import_module

# distributed training: name -> defining module
_DISTRIBUTED = {
    "DDPBucketed": "cs336_systems.ddp_bucketed",
    "DDPIndividualParameters": "cs336_systems.ddp_individual",
    "FullyShardedDataParallel": "cs336_systems.fsdp",
    "ShardedOptimizer": "cs336_systems.sharded_optimizer",
    "all_reduce_gradients": "cs336_systems.ddp",
    "all_reduce_gradients_flat": "cs336_systems.ddp",
}

_LAZY = {**_DISTRIBUTED}
__all__ = sorted(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'cs336_systems' has no attribute {name!r}")
