"""FlashAttention-2 in Triton, the systems assignment's kernel.

The kernels live in ``cs336_common.nn.flash_attention``: the Transformer LM uses them as
its ``"flash"`` attention backend, so basics' training step runs on them too. This module
keeps the assignment's names.
"""

from cs336_common.nn.flash_attention import (
    MAX_HEAD_DIM,
    SUPPORTED_DTYPES,
    FlashAttentionTriton,
    flash_attention_triton,
)

__all__ = ["MAX_HEAD_DIM", "SUPPORTED_DTYPES", "FlashAttentionTriton", "flash_attention_triton"]
