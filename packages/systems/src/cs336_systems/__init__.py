"""cs336-systems: benchmarking, FlashAttention-2 (PyTorch and Triton), distributed training.

Names are re-exported lazily (PEP 562) so that ``cs336-systems --help`` imports neither
torch nor triton.
"""

from importlib import import_module

# FlashAttention-2: name -> defining module
_FLASH = {
    "FlashAttentionPyTorch": "cs336_systems.flash_pytorch",
    "FlashAttentionTriton": "cs336_systems.flash_triton",
    "flash_attention_triton": "cs336_systems.flash_triton",
    "flash_attention_backend": "cs336_systems.attention_backend",
}

# distributed training: name -> defining module
_DISTRIBUTED = {
    "DDPBucketed": "cs336_systems.ddp_bucketed",
    "DDPIndividualParameters": "cs336_systems.ddp_individual",
    "FullyShardedDataParallel": "cs336_systems.fsdp",
    "ShardedOptimizer": "cs336_systems.sharded_optimizer",
    "all_reduce_gradients": "cs336_systems.ddp",
    "all_reduce_gradients_flat": "cs336_systems.ddp",
}

_LAZY = {**_FLASH, **_DISTRIBUTED}
__all__ = sorted(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'cs336_systems' has no attribute {name!r}")
