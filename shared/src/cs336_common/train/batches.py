"""Random training windows from a flat token array (in memory or memory-mapped)."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import torch

# tokens copied per chunk when a token file moves to the device: host memory stays flat
_UPLOAD_CHUNK = 1 << 26


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
    starts = _draw_starts(len(dataset), batch_size, context_length, rng)
    windows = dataset[starts[:, None] + np.arange(context_length + 1)]
    batch = _to_device(torch.from_numpy(windows.astype(np.int64)), torch.device(device))
    return batch[:, :-1], batch[:, 1:]


def _draw_starts(
    num_tokens: int, batch_size: int, context_length: int, rng: np.random.Generator | None
) -> npt.NDArray[np.int64]:
    num_starts = num_tokens - context_length
    if num_starts < 1:
        raise ValueError(
            f"dataset has {num_tokens} tokens; need more than context_length={context_length}"
        )
    rng = np.random.default_rng() if rng is None else rng
    return rng.integers(0, num_starts, size=batch_size)


def _to_device(t: torch.Tensor, device: torch.device) -> torch.Tensor:
    if device.type == "cuda":
        # Pinned memory lets the copy run asynchronously with the previous step's kernels.
        return t.pin_memory().to(device, non_blocking=True)
    return t.to(device)


class RandomBatches:
    """An endless iterator of `get_batch` batches from one numpy generator seeded with
    ``seed``; its ``state_dict`` is the generator state, so a resumed run draws the
    same batches the uninterrupted one would have.

    ``on_device=True`` copies the whole token array to ``device`` once; each batch then
    costs the host one draw of ``batch_size`` starts and a copy of them, and the windows
    are gathered on the device. The batches are the same either way (the starts come
    from the same generator), so a run may resume with the other setting."""

    def __init__(
        self,
        dataset: npt.NDArray,
        batch_size: int,
        context_length: int,
        device: str | torch.device,
        seed: int | list[int] = 0,
        *,
        on_device: bool = False,
    ):
        self.dataset, self.batch_size, self.context_length = dataset, batch_size, context_length
        self.device = torch.device(device)
        self.rng = np.random.default_rng(seed)
        self._tokens = _upload(dataset, self.device) if on_device else None
        if on_device:
            self._offsets = torch.arange(context_length + 1, device=self.device)
            # ids were stored as signed ints of the same width: mask off the sign extension
            self._id_mask = (1 << (8 * dataset.dtype.itemsize)) - 1

    def __iter__(self) -> RandomBatches:
        return self

    def __next__(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self._tokens is None:
            return get_batch(
                self.dataset, self.batch_size, self.context_length, self.device, rng=self.rng
            )
        starts = _draw_starts(len(self.dataset), self.batch_size, self.context_length, self.rng)
        starts = _to_device(torch.from_numpy(starts), self.device)
        batch = self._tokens[starts[:, None] + self._offsets].long() & self._id_mask
        return batch[:, :-1], batch[:, 1:]

    def state_dict(self) -> dict:
        return self.rng.bit_generator.state

    def load_state_dict(self, state: dict) -> None:
        self.rng.bit_generator.state = state


def _upload(dataset: npt.NDArray, device: torch.device) -> torch.Tensor:
    """``dataset`` (unsigned ids, e.g. a memmap) on ``device`` as signed ints of the same
    width (torch indexes those on every device), copied a chunk at a time."""
    if dataset.dtype.kind != "u" or dataset.dtype.itemsize not in (2, 4):
        raise ValueError(f"on_device needs uint16 or uint32 token ids, got {dataset.dtype}")
    signed = np.dtype(f"<i{dataset.dtype.itemsize}")
    dtype = getattr(torch, f"int{8 * signed.itemsize}")
    out = torch.empty(len(dataset), dtype=dtype, device=device)
    for start in range(0, len(dataset), _UPLOAD_CHUNK):
        chunk = np.array(dataset[start : start + _UPLOAD_CHUNK]).view(signed)  # writable copy
        out[start : start + len(chunk)].copy_(torch.from_numpy(chunk))
    return out
