"""Throughput of one full training step (forward, backward, AdamW) of the TinyStories
model (vocab 10k, context 256, d_model 512, d_ff 1344, 4 layers, 16 heads) at batch 128,
on synthetic token ids, for these implementations measured in one process:

  a  ours, eager fp32: cs336_common TransformerLM (naive attention), our cross_entropy
     and AdamW, TF32 off
  b  ours, tuned: bf16 autocast, TF32, torch.compile of model + loss,
     attention_backend="torch" (PyTorch's fused SDPA), AdamW(compile=True)
  d  b with mode="max-autotune-no-cudagraphs" (autotuned GEMMs; slow to compile)
  e  b with the LM head and the loss fused: ``model.features`` then `linear_cross_entropy`
     compiled as one graph (one Triton pass over the logits writes loss and gradient)
  f  b with mode="reduce-overhead" (CUDA graphs for forward and backward)
  g  b with attention_backend="flash": our Triton FlashAttention-2, which also applies
     RoPE and returns the gradient of the packed q/k/v projection (no transposes, no
     RoPE backward, no concatenation of dQ, dK, dV)
  h  g with CUDA graphs, as f
  i  h with the LM head and loss fused, as e
  c  plain PyTorch, written below as a user would: nn.Embedding/nn.Linear/nn.RMSNorm,
     F.scaled_dot_product_attention, SwiGLU, RoPE, F.cross_entropy,
     torch.optim.AdamW(fused=True), bf16 autocast, TF32, torch.compile
  j  c with CUDA graphs too (torch.compile mode="reduce-overhead"), for comparison with
     (h) and (i)

MFU counts 3x the forward matmul FLOPs of `cs336_common.flops_per_token` (the attention
scores as a full seq x seq product, as the course's accounting does) against the card's
dense bf16 peak (`cs336_common.train.metrics.peak_flops`; 989 TFLOP/s for an H100 SXM, which
off-GPU runs also use), for every variant, fp32 included.

  python packages/basics/benchmarks/bench_train_step.py                  # one GPU
  python packages/basics/benchmarks/bench_train_step.py --device cpu --tiny   # smoke run
"""

from __future__ import annotations

import argparse
import gc
import math
import time
from collections.abc import Callable
from dataclasses import replace
from functools import partial

import torch
import torch.nn.functional as F
from torch import nn

from cs336_basics import AdamW, cross_entropy
from cs336_common.device import peak_flops, synchronize
from cs336_common.nn import ModelConfig, TransformerLM, flops_per_token, load_model_config
from cs336_common.train import linear_cross_entropy

H100_BF16_PEAK = 989e12  # FLOP/s, dense; the reference for devices peak_flops doesn't know
BUDGET_TOKENS = 327_680_000  # the course's TinyStories run


# ---- (c) the plain PyTorch model -----------------------------------------------------


class _PlainBlock(nn.Module):
    def __init__(self, d_model: int, num_heads: int, d_ff: int):
        super().__init__()
        self.num_heads = num_heads
        self.ln1, self.ln2 = nn.RMSNorm(d_model, eps=1e-5), nn.RMSNorm(d_model, eps=1e-5)
        self.q, self.k, self.v, self.o = (nn.Linear(d_model, d_model, bias=False) for _ in range(4))
        self.w1 = nn.Linear(d_model, d_ff, bias=False)
        self.w2 = nn.Linear(d_ff, d_model, bias=False)
        self.w3 = nn.Linear(d_model, d_ff, bias=False)

    def forward(self, x, cos, sin):
        b, s, d = x.shape
        h = self.ln1(x)
        q, k, v = (
            p(h).view(b, s, self.num_heads, -1).transpose(1, 2) for p in (self.q, self.k, self.v)
        )
        q, k = _rope(q, cos, sin), _rope(k, cos, sin)
        a = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.o(a.transpose(1, 2).reshape(b, s, d))
        h = self.ln2(x)
        return x + self.w2(F.silu(self.w1(h)) * self.w3(h))


def _rope(x, cos, sin):  # rotate the two halves of each head vector
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1)


class _PlainLM(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.embed = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.blocks = nn.ModuleList(
            _PlainBlock(cfg.d_model, cfg.num_heads, cfg.d_ff) for _ in range(cfg.num_layers)
        )
        self.ln_f = nn.RMSNorm(cfg.d_model, eps=1e-5)
        self.lm_head = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        d_head = cfg.d_model // cfg.num_heads
        inv_freq = cfg.rope_theta ** (-torch.arange(0, d_head, 2).float() / d_head)
        angles = torch.outer(torch.arange(cfg.context_length).float(), inv_freq)
        self.register_buffer("cos", angles.cos(), persistent=False)
        self.register_buffer("sin", angles.sin(), persistent=False)

    def forward(self, ids, targets):
        s = ids.shape[1]
        x = self.embed(ids)
        for block in self.blocks:
            x = block(x, self.cos[:s], self.sin[:s])
        logits = self.lm_head(self.ln_f(x))
        return F.cross_entropy(logits.view(-1, logits.shape[-1]), targets.view(-1))


# ---- the three variants: each returns a step function --------------------------------


def _ours_eager(cfg: ModelConfig, device) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    torch.set_float32_matmul_precision("highest")
    model = TransformerLM.from_config(cfg, device=device)
    opt = AdamW(model.parameters(), lr=1e-3, weight_decay=0.1)

    def step(x, y):
        loss = cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss.detach()

    return step


def _ours_tuned(
    cfg: ModelConfig,
    device,
    mode: str = "default",
    attention: str = "torch",
    fused_loss: bool = False,
) -> Callable:
    torch.set_float32_matmul_precision("high")  # TF32 for what stays in fp32
    model = TransformerLM.from_config(replace(cfg, attention_backend=attention), device=device)
    opt = AdamW(model.parameters(), lr=1e-3, weight_decay=0.1, compile=True)

    def loss(x, y):
        if fused_loss:
            return linear_cross_entropy(model.features(x), model.lm_head.weight, y)
        return cross_entropy(model(x), y)

    return _autocast_step(torch.compile(loss, fullgraph=True, mode=mode), opt, device)


def _plain_pytorch(cfg: ModelConfig, device, mode: str = "default") -> Callable:
    torch.set_float32_matmul_precision("high")
    model = _PlainLM(cfg).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.1, fused=True)
    return _autocast_step(torch.compile(model, mode=mode), opt, device)


def _autocast_step(loss_fn, opt, device) -> Callable:
    def step(x, y):
        with torch.autocast(device.type, dtype=torch.bfloat16):
            loss = loss_fn(x, y)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss.detach()

    return step


VARIANTS = {
    "a": ("(a) ours, eager fp32", _ours_eager),
    "b": ("(b) ours, tuned (bf16, compile)", _ours_tuned),
    "c": ("(c) plain PyTorch (bf16, compile, fused AdamW)", _plain_pytorch),
    # (b) plus autotuned Triton GEMMs that can fuse their neighbours (slower to compile)
    "d": (
        "(b') ours, tuned + max-autotune GEMMs",
        partial(_ours_tuned, mode="max-autotune-no-cudagraphs"),
    ),
    "e": ("(e) ours, tuned + fused LM head and loss", partial(_ours_tuned, fused_loss=True)),
    "f": ("(f) ours, tuned + CUDA graphs", partial(_ours_tuned, mode="reduce-overhead")),
    "g": ("(g) ours, tuned + our FlashAttention", partial(_ours_tuned, attention="flash")),
    "h": (
        "(h) ours, tuned + our FlashAttention + CUDA graphs",
        partial(_ours_tuned, mode="reduce-overhead", attention="flash"),
    ),
    "i": (
        "(i) ours, all: our FlashAttention + fused LM head and loss + CUDA graphs",
        partial(_ours_tuned, mode="reduce-overhead", attention="flash", fused_loss=True),
    ),
    "j": (
        "(j) plain PyTorch + CUDA graphs",
        partial(_plain_pytorch, mode="reduce-overhead"),
    ),
}


# ---- measurement ---------------------------------------------------------------------


def measure(name: str, cfg: ModelConfig, device, batch_size: int, warmup: int, steps: int) -> dict:
    torch.manual_seed(0)
    gen = torch.Generator(device=device).manual_seed(0)
    x, y = (
        torch.randint(
            cfg.vocab_size, (batch_size, cfg.context_length), device=device, generator=gen
        )
        for _ in range(2)
    )
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    t0 = time.perf_counter()
    step = VARIANTS[name][1](cfg, device)
    first = step(x, y).item()
    for _ in range(warmup - 1):
        step(x, y)
    synchronize(device)
    t1 = time.perf_counter()
    for _ in range(steps):
        loss = step(x, y)
    synchronize(device)
    t2 = time.perf_counter()
    tokens_per_s = steps * batch_size * cfg.context_length / (t2 - t1)
    train_flops = 3 * flops_per_token(cfg)["total"]
    row = dict(
        variant=VARIANTS[name][0],
        tokens_per_s=tokens_per_s,
        mfu=tokens_per_s * train_flops / (peak_flops(device, "bf16") or H100_BF16_PEAK),
        budget_min=BUDGET_TOKENS / tokens_per_s / 60,
        ms_per_step=(t2 - t1) / steps * 1e3,
        warmup_s=t1 - t0,
        peak_gib=torch.cuda.max_memory_allocated(device) / 2**30
        if device.type == "cuda"
        else math.nan,
        first_loss=first,
        last_loss=loss.item(),
    )
    del step
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return row


def markdown(rows: list[dict]) -> str:
    lines = [
        "| variant | tokens/s | vs (c) | MFU | minutes for 327.68M tokens | ms/step | peak memory | warm-up + compile |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    plain = next((r["tokens_per_s"] for r in rows if r["variant"].startswith("(c)")), math.nan)
    for r in rows:
        lines.append(
            f"| {r['variant']} | {r['tokens_per_s']:,.0f} | {r['tokens_per_s'] / plain:.3f} | "
            f"{r['mfu']:.1%} | "
            f"{r['budget_min']:.1f} | {r['ms_per_step']:.1f} | {r['peak_gib']:.1f} GiB | "
            f"{r['warmup_s']:.0f} s |"
        )
    return "\n".join(lines)


def check_variants(parser: argparse.ArgumentParser, letters: str) -> None:
    """Unknown variant letters: one line and exit code 2, before anything compiles."""
    unknown = sorted(set(letters) - set(VARIANTS))
    if unknown:
        parser.error(f"--variants: unknown {''.join(unknown)!r}; choose from {''.join(VARIANTS)}")


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--device", default="cuda")
    p.add_argument(
        "--tiny", action="store_true", help="a tiny model and batch, to check the script"
    )
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--warmup", type=int, default=5, help="untimed steps (the first compiles)")
    p.add_argument("--steps", type=int, default=30, help="timed steps")
    p.add_argument("--variants", default="abc", help="which of a-j to run, in order")
    args = p.parse_args()
    check_variants(p, args.variants)
    device = torch.device(args.device)
    cfg = load_model_config("tiny" if args.tiny else "tinystories")
    batch_size = 4 if args.tiny else args.batch_size
    hardware = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"{hardware}, torch {torch.__version__}, {cfg}, batch {batch_size}")
    rows = []
    for name in args.variants:
        rows.append(measure(name, cfg, device, batch_size, args.warmup, args.steps))
        r = rows[-1]
        print(
            f"{r['variant']}: {r['tokens_per_s']:,.0f} tokens/s, loss {r['first_loss']:.3f} -> "
            f"{r['last_loss']:.3f}",
            flush=True,
        )
    print()
    print(markdown(rows))


if __name__ == "__main__":
    main()
