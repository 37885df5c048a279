"""End-to-end LM benchmark: forward, forward + backward, and a full AdamW training step.

Sizes are anything `cs336_common.load_model_config` reads: the course's size table
(vocab 10,000, batch 4) is its presets ``small`` ... ``2.7b``, ``tiny`` is for CPU smoke
runs, and a config file or run directory benchmarks that model. Each measurement is ``warmup`` untimed steps, then
``steps`` timed ones with a device synchronisation after each (``harness.time_fn``).
With ``nvtx=True`` every phase is an NVTX range (``forward``, ``backward``,
``optimizer_step``, and ``attention`` with ``scores`` / ``softmax`` / ``weighted_sum``
inside it for the naive kernel), so an Nsight Systems timeline reads by phase.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from itertools import product

import torch
import torch.nn.functional as F
from tqdm import tqdm

from cs336_common.device import resolve_device
from cs336_common.errors import InputError
from cs336_common.nn import TransformerLM, causal_mask, load_model_config, softmax
from cs336_systems.bench.harness import (
    OOM,
    free_memory,
    nvtx_range,
    run_or_oom,
    time_fn,
)

ATTENTIONS = ("naive", "torch", "flash")
DTYPES = ("fp32", "bf16")


@dataclass
class ModelBenchConfig:
    sizes: tuple[str, ...] = ("small",)
    context_lengths: tuple[int, ...] = (256,)
    batch_size: int = 4
    vocab_size: int = 10_000
    warmup: int = 5
    steps: int = 10
    dtype: str = "fp32"  # "bf16": autocast, weights stay fp32
    compile: bool = False
    attention: str = "naive"
    nvtx: bool = False
    device: str = "auto"

    def __post_init__(self):
        for size in self.sizes:
            load_model_config(size)  # a bad name fails here, not after the first sizes ran
        if self.attention not in ATTENTIONS:
            raise InputError(f"attention must be one of {ATTENTIONS}; got {self.attention!r}")
        if self.dtype not in DTYPES:
            raise InputError(f"dtype must be one of {DTYPES}; got {self.dtype!r}")


def _annotated_naive_attention(q, k, v, is_causal: bool):
    """The naive kernel, phase by phase, each phase an NVTX range."""
    with nvtx_range("scores", True):
        scores = (q * (1.0 / math.sqrt(q.shape[-1]))) @ k.transpose(-2, -1)
        if is_causal:
            mask = causal_mask(q.shape[-2], k.shape[-2], q.device)
            scores = scores.masked_fill(~mask, float("-inf"))
    with nvtx_range("softmax", True):
        probs = softmax(scores, dim=-1)
    with nvtx_range("weighted_sum", True):
        return probs @ v


def attention_backend(name: str, nvtx: bool):
    """--attention name -> the LM's backend; wrapped in an ``attention`` range with --nvtx."""
    if name == "flash":
        from cs336_systems.attention_backend import flash_attention_backend

        backend = flash_attention_backend
    elif name == "naive" and nvtx:
        backend = _annotated_naive_attention
    else:
        return name
    if not nvtx:
        return backend

    def annotated(q, k, v, is_causal):
        with nvtx_range("attention", True):
            return backend(q, k, v, is_causal)

    return annotated


def build_model(cfg: ModelBenchConfig, size: str, context_length: int, device) -> torch.nn.Module:
    model_cfg = load_model_config(
        size,
        vocab_size=cfg.vocab_size,
        context_length=context_length,
        attention_backend=attention_backend(cfg.attention, cfg.nvtx),
    )
    model = TransformerLM.from_config(model_cfg, device=device)
    if cfg.compile:
        # Regional compilation: the blocks share code and shapes, so one compiled block
        # serves every layer and compile time stops growing with depth (a whole-model
        # compile of three sizes did not finish in 170 s on an H100).
        for block in model.layers:
            block.compile()
    return model


def step_functions(
    cfg: ModelBenchConfig, model, context_length: int, device
) -> dict[str, Callable]:
    """{"forward", "forward+backward", "train step"} -> a no-argument function on random data."""
    g = torch.Generator(device=device).manual_seed(0)
    shape = (cfg.batch_size, context_length)
    ids = torch.randint(0, cfg.vocab_size, shape, generator=g, device=device)
    targets = torch.randint(0, cfg.vocab_size, shape, generator=g, device=device)
    fused = device.type == "cuda"
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=fused)

    def autocast():
        return torch.autocast(device.type, torch.bfloat16, enabled=cfg.dtype == "bf16")

    def forward():
        with nvtx_range("forward", cfg.nvtx), autocast():
            logits = model(ids)
            return F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten())

    def inference():
        with torch.no_grad():
            forward()

    def forward_backward():
        loss = forward()
        with nvtx_range("backward", cfg.nvtx):
            loss.backward()

    def train_step():
        optimizer.zero_grad(set_to_none=True)
        forward_backward()
        with nvtx_range("optimizer_step", cfg.nvtx):
            optimizer.step()

    return {"forward": inference, "forward+backward": forward_backward, "train step": train_step}


def bench_model(cfg: ModelBenchConfig, progress: bool = True) -> list[dict]:
    """One row per (size, context length): mean ± std ms of each phase, or OOM."""
    device = resolve_device(cfg.device)
    rows = []
    cases = list(product(cfg.sizes, cfg.context_lengths))
    for size, ctx in tqdm(cases, desc="bench model", disable=not progress):
        row = {"size": size, "context": ctx, "dtype": cfg.dtype, "attention": cfg.attention}
        row["compile"] = cfg.compile
        row.update(_bench_case(cfg, size, ctx, device))
        rows.append(row)
        free_memory()
    return rows


def _bench_case(cfg: ModelBenchConfig, size: str, ctx: int, device) -> dict:
    model = run_or_oom(lambda: build_model(cfg, size, ctx, device))
    if model is OOM:
        return dict.fromkeys(("forward ms", "forward+backward ms", "train step ms"), OOM)
    result = {}
    for name, fn in step_functions(cfg, model, ctx, device).items():
        timing = run_or_oom(
            lambda fn=fn: time_fn(fn, warmup=cfg.warmup, steps=cfg.steps, device=device)
        )
        result[f"{name} ms"] = timing if timing is OOM else str(timing)
    del model
    return result
