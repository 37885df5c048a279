"""Generated tokens/s of `cs336_common.Engine` against the lockstep `generate_ids` it
replaced, on a rollout-shaped workload: prompts of mixed lengths (16 to 512 tokens),
``num_samples`` 8, sampling at temperature 1 with no EOS (every row generates exactly
``--new-tokens``, so both paths produce the same number of tokens).

  a  engine:   one padded prefill of the distinct prompts, each prompt's cache row
               repeated for its 8 samples, one token per live row per step
  b  lockstep: the frozen copy of the old `cs336_basics.generation.generate_ids` below
               (each of the 8 copies of a prompt is a row of its own; the shortest prompt
               is prefilled and every other prompt token is fed one position per step)

Models (random weights, context 1024, attention_backend="torch"; fp32 on CPU, bf16 on
CUDA): ``tinystories``, the assignment-1 shape (vocab 10k, d_model 512, 4 layers, 16
heads, d_ff 1344), and ``cpu-small`` (vocab 10k, d_model 256, 4 layers, 8 heads, d_ff
672), small enough for a 2-core CPU. Before timing, greedy outputs of both paths are
compared on a few prompts.

  python shared/benchmarks/bench_engine.py --device cpu --model cpu-small --threads 1
  python shared/benchmarks/bench_engine.py --device cuda --prompts 32 --new-tokens 256
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import time

import torch
from torch import Tensor

from cs336_common import Engine, ModelConfig, SamplingParams, TransformerLM
from cs336_common.device import synchronize
from cs336_common.nn import softmax

# ---- (b) FROZEN COPY of the old lockstep path, for comparison only ---------------------
# cs336_basics.generation.generate_ids and sample_next as of commit 47d9dc7, before the
# engine replaced them, trimmed to the branches this benchmark takes (top_p 1, no EOS,
# prompts that fit); the loop is unchanged. Not used anywhere else.


def _old_sample_next(logits: Tensor, temperature: float, generator) -> Tensor:
    if temperature == 0:
        return logits.argmax(dim=-1)
    if logits.element_size() < 4:
        logits = logits.float()
    probs = softmax(logits / temperature, dim=-1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


@torch.inference_mode()
def old_generate_ids(model, prompts, max_new_tokens, temperature=1.0, seed=0):
    ctx = model.config.context_length
    device = model.lm_head.weight.device
    prompt_len = torch.tensor([len(p) for p in prompts], device=device)
    limit = (prompt_len + max_new_tokens).clamp(max=ctx)
    tokens = torch.zeros(len(prompts), int(limit.max()), dtype=torch.long, device=device)
    for i, p in enumerate(prompts):
        tokens[i, : len(p)] = torch.tensor(p, dtype=torch.long)
    generator = torch.Generator(device=device)
    generator.manual_seed(seed)
    cache = model.new_kv_cache(len(prompts))
    pos = int(prompt_len.min())
    end = int(limit.max())
    logits = model(tokens[:, :pos], kv_cache=cache)[:, -1]
    while pos < end:
        sampled = _old_sample_next(logits, temperature, generator)
        reading = pos < prompt_len
        tokens[:, pos] = torch.where(reading, tokens[:, pos], sampled)
        pos += 1
        if pos < end:
            logits = model(tokens[:, pos - 1 : pos], kv_cache=cache)[:, -1]
    return [tokens[i, len(p) : int(limit[i])].tolist() for i, p in enumerate(prompts)]


# ---- the benchmark ---------------------------------------------------------------------


MODELS = {
    "tinystories": ModelConfig.from_preset("tinystories", context_length=1024),
    "cpu-small": ModelConfig(
        vocab_size=10000, context_length=1024, d_model=256, num_layers=4, num_heads=8, d_ff=672
    ),
}


def _prompts(n: int, vocab_size: int, lo: int = 16, hi: int = 512) -> list[list[int]]:
    """n prompts with lengths spread evenly over [lo, hi], random seeded ids."""
    g = torch.Generator().manual_seed(0)
    lengths = torch.linspace(lo, hi, n).round().long().tolist() if n > 1 else [hi]
    return [torch.randint(vocab_size, (k,), generator=g).tolist() for k in lengths]


def _timed(fn, device: torch.device) -> float:
    synchronize(device)
    t0 = time.perf_counter()
    fn()
    synchronize(device)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--model", choices=MODELS, default="tinystories")
    ap.add_argument("--prompts", type=int, default=8, help="distinct prompts (default 8)")
    ap.add_argument("--samples", type=int, default=8, help="num_samples per prompt")
    ap.add_argument("--new-tokens", type=int, default=64, help="tokens generated per row")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json", help="also write the results here")
    ap.add_argument("--threads", type=int, help="torch CPU threads (1 on a busy machine)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    torch.manual_seed(0)
    cfg = dataclasses.replace(MODELS[args.model], attention_backend="torch")
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    model = TransformerLM.from_config(cfg, device=device, dtype=dtype).eval()
    prompts = _prompts(args.prompts, cfg.vocab_size)
    rows = [p for p in prompts for _ in range(args.samples)]
    engine = Engine(model, None)
    params = SamplingParams(args.new_tokens, temperature=1.0, num_samples=args.samples, seed=0)

    # sanity: greedy continuations of the 3 shortest prompts, 16 tokens, both paths
    check = prompts[:3]
    greedy = [c.ids for (c,) in engine.generate(check, SamplingParams(16, 0.0))]
    old = old_generate_ids(model, check, 16, 0.0)
    same = sum(a == b for a, b in zip(greedy, old, strict=True))
    print(f"greedy check: {same}/{len(check)} rows identical (16 tokens each)", flush=True)

    runs = {
        "engine": lambda: engine.generate(prompts, params),
        "lockstep generate_ids (old)": lambda: old_generate_ids(model, rows, args.new_tokens),
    }
    generated = len(rows) * args.new_tokens
    times: dict[str, list[float]] = {name: [] for name in runs}
    for name, fn in runs.items():
        if device.type == "cuda":
            fn()  # warm-up (allocator, kernels); on CPU the greedy check warmed up
        for _ in range(args.repeats):
            times[name].append(_timed(fn, device))
            print(f"  {name}: {times[name][-1]:.2f} s", flush=True)

    dev = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    lengths = [len(p) for p in prompts]
    print(
        f"\n{args.model} model, {dev}, {dtype}, {args.prompts} prompts "
        f"({min(lengths)}..{max(lengths)} tokens) x {args.samples} samples x "
        f"{args.new_tokens} new tokens = {generated} tokens, {args.repeats} repeats"
    )
    print(f"{'path':30} {'tokens/s (median)':>18} {'min..max':>17} {'speed-up':>9}")
    base = statistics.median(times["lockstep generate_ids (old)"])
    results = []
    for name, ts in times.items():
        rate = [generated / t for t in ts]
        med = generated / statistics.median(ts)
        results.append(dict(path=name, tokens_per_s=med, min=min(rate), max=max(rate)))
        speedup = base / statistics.median(ts)
        print(f"{name:30} {med:18.0f} {min(rate):8.0f}..{max(rate):<8.0f} {speedup:8.2f}x")
    if args.json:
        meta = dict(vars(args), device_name=dev, dtype=str(dtype), prompt_lengths=lengths)
        with open(args.json, "w") as f:
            json.dump(dict(meta=meta, greedy_identical=same, results=results), f, indent=1)


if __name__ == "__main__":
    main()
