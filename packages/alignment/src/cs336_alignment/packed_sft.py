"""Instruction tuning data for the supplement: Alpaca-formatted documents packed into
fixed-length examples (`PackedSFTDataset`) and a batch iterator over them."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

from cs336_alignment.jsonl import read_jsonl
from cs336_alignment.prompt_templates import load_prompt
from cs336_alignment.text_tokenizer import as_text_tokenizer


class PackedSFTDataset(Dataset):
    """``{"prompt", "response"}`` rows formatted with the Alpaca template, each document
    as ``bos? + tokens + eos``, concatenated (in shuffled order if ``shuffle``) and cut
    into ``seq_length`` windows: example i is ``input_ids = ids[i*L : (i+1)*L]`` and
    ``labels = ids[i*L+1 : (i+1)*L+1]``; the incomplete tail is dropped."""

    def __init__(self, tokenizer: Any, dataset_path: str | Path, seq_length: int, shuffle: bool):
        if seq_length < 1:
            raise ValueError(f"seq_length must be >= 1, got {seq_length}")
        tok = as_text_tokenizer(tokenizer)
        template = load_prompt("alpaca_sft")
        rows = read_jsonl(dataset_path)
        for n, row in enumerate(rows, 1):
            if not isinstance(row, dict) or {"prompt", "response"} - set(row):
                raise ValueError(f"{dataset_path}: row {n} lacks 'prompt' or 'response'")
        if shuffle:
            random.shuffle(rows)
        eos = [] if tok.eos_id is None else [tok.eos_id]
        ids: list[int] = []
        for row in rows:
            text = template.format(instruction=row["prompt"], response=row["response"])
            ids += tok.bos_ids + tok.encode(text) + eos
        self.seq_length = seq_length
        self.ids = torch.tensor(ids, dtype=torch.long)

    def __len__(self) -> int:
        return max(0, (len(self.ids) - 1) // self.seq_length)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        if not -len(self) <= i < len(self):
            raise IndexError(f"index {i} out of range for {len(self)} examples")
        i %= len(self)
        start = i * self.seq_length
        window = self.ids[start : start + self.seq_length + 1]
        return {"input_ids": window[:-1], "labels": window[1:]}


def iterate_batches(
    dataset: Dataset, batch_size: int, shuffle: bool
) -> Iterator[dict[str, torch.Tensor]]:
    """Batches of ``batch_size`` examples (the last may be smaller), stacked per key."""
    return iter(DataLoader(dataset, batch_size=batch_size, shuffle=shuffle))
