"""cs336-systems: benchmarking, FlashAttention-2 (PyTorch and Triton), distributed training.

Names are re-exported lazily (PEP 562) so that ``cs336-systems --help`` imports neither
torch nor triton.
"""

_LAZY_EXPORTS = {
    "FlashAttentionPyTorch": "cs336_systems.flash_pytorch",
    "FlashAttentionTriton": "cs336_systems.flash_triton",
    "flash_attention_triton": "cs336_systems.flash_triton",
    "flash_attention_backend": "cs336_systems.attention_backend",
}

__all__ = [*_LAZY_EXPORTS]


def __getattr__(name: str):
    if name in _LAZY_EXPORTS:
        import importlib

        return getattr(importlib.import_module(_LAZY_EXPORTS[name]), name)
    raise AttributeError(f"module 'cs336_systems' has no attribute {name!r}")
