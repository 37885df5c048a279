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


class RandomBatches:
    """An endless iterator of `get_batch` batches from one numpy generator seeded with
    ``seed``; its ``state_dict`` is the generator state, so a resumed run draws the
    same batches the uninterrupted one would have."""

    def __init__(
        self,
        dataset: npt.NDArray,
        batch_size: int,
        context_length: int,
        device: str | torch.device,
        seed: int | list[int] = 0,
    ):
        self.dataset, self.batch_size, self.context_length = dataset, batch_size, context_length
        self.device = device
        self.rng = np.random.default_rng(seed)

    def __iter__(self) -> RandomBatches:
        return self

    def __next__(self) -> tuple[torch.Tensor, torch.Tensor]:
        return get_batch(
            self.dataset, self.batch_size, self.context_length, self.device, rng=self.rng
        )

    def state_dict(self) -> dict:
        return self.rng.bit_generator.state

    def load_state_dict(self, state: dict) -> None:
        self.rng.bit_generator.state = state
