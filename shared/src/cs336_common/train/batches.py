"""Random training windows from a flat token array (in memory or memory-mapped)."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import torch


def get_batch(
    dataset: npt.NDArray,
    batch_size: int,
    context_length: int,
    device: str | torch.device,
    *,
    rng: np.random.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``batch_size`` windows at uniformly random starts: ``x = data[s : s+T]`` and
    ``y = data[s+1 : s+T+1]``, both int64 of shape (batch_size, context_length) on
    ``device``. Only the sampled windows are read, so a memmap is never loaded whole.
    Pass ``rng`` for reproducible batches."""
    num_starts = len(dataset) - context_length
    if num_starts < 1:
        raise ValueError(
            f"dataset has {len(dataset)} tokens; need more than context_length={context_length}"
        )
    rng = np.random.default_rng() if rng is None else rng
    starts = rng.integers(0, num_starts, size=batch_size)
    windows = dataset[starts[:, None] + np.arange(context_length + 1)]
    batch = torch.from_numpy(windows.astype(np.int64))
    device = torch.device(device)
    if device.type == "cuda":
        # Pinned memory lets the copy run asynchronously with the previous step's kernels.
        batch = batch.pin_memory().to(device, non_blocking=True)
    else:
        batch = batch.to(device)
    return batch[:, :-1], batch[:, 1:]
