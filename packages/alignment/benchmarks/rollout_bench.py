"""Rollout throughput: the common engine on our TransformerLM vs Hugging Face
``generate`` on the same weights exported as ``LlamaForCausalLM``; same prompts, same
batch, ``num_samples`` 8, every completion exactly ``--max-new-tokens`` long (no EOS,
no stop strings), so both produce the same number of tokens. Prints a side-by-side table
of generated tokens/s (median and spread over ``--repeats`` runs after a warm-up).

Rows: the engine as it runs by default on a GPU (each decode step replayed as a CUDA
graph; the capture is inside every timed call), the same with the model's own forward
in the graph instead of the fused decode ops (to show their share), graphs off (eager), and
HF ``generate`` with its defaults (``DynamicCache``, eager attention off: SDPA, no
compile), sampling at temperature 1 with top-k/top-p off. ``--hf-static`` adds HF with
``cache_implementation="static"``, which HF compiles on first use (slow to start).

  python packages/alignment/benchmarks/rollout_bench.py --device cuda --out bench.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda")
    p.add_argument("--prompts", type=int, default=64)
    p.add_argument("--num-samples", type=int, default=8)
    p.add_argument("--prompt-tokens", type=int, default=64)
    p.add_argument("--max-new-tokens", type=int, default=128)
    p.add_argument("--d-model", type=int, default=768)
    p.add_argument("--layers", type=int, default=12)
    p.add_argument("--heads", type=int, default=12)
    p.add_argument("--vocab", type=int, default=50304)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--dtype", default="bfloat16")
    p.add_argument("--hf-static", action="store_true", help="also time HF's static cache")
    p.add_argument("--out")
    args = p.parse_args()

    from cs336_alignment.hf_export import to_hf_model
    from cs336_common import TransformerLM
    from cs336_common.device import synchronize
    from cs336_common.engine import Engine, SamplingParams

    device, dtype = torch.device(args.device), getattr(torch, args.dtype)
    torch.manual_seed(0)
    ours = TransformerLM(
        args.vocab, args.prompt_tokens + args.max_new_tokens, args.d_model, args.layers,
        args.heads, attention_backend="torch", device=device, dtype=dtype,
    ).eval()  # fmt: skip
    hf = to_hf_model(ours).eval()
    prompts = torch.randint(0, args.vocab, (args.prompts, args.prompt_tokens)).tolist()
    n_tokens = args.prompts * args.num_samples * args.max_new_tokens

    params = SamplingParams(max_new_tokens=args.max_new_tokens, num_samples=args.num_samples)

    def run_engine(cuda_graphs, fused=True):
        # fused=False: the step runs the model's forward (the engine before the fused ops)
        engine = Engine(ours, None, device=device, cuda_graphs=cuda_graphs, fused_ops=fused)

        def run():
            outs = engine.generate(prompts, params)
            assert sum(len(c.ids) for o in outs for c in o) == n_tokens

        return run

    ids = torch.tensor(prompts, device=device)

    def run_hf(**kw):
        @torch.inference_mode()
        def run():
            out = hf.generate(
                input_ids=ids, attention_mask=torch.ones_like(ids), do_sample=True,
                temperature=1.0, top_p=1.0, top_k=0, max_new_tokens=args.max_new_tokens,
                min_new_tokens=args.max_new_tokens, num_return_sequences=args.num_samples,
                eos_token_id=None, pad_token_id=0, **kw,
            )  # fmt: skip
            assert out[:, args.prompt_tokens :].numel() == n_tokens

        return run

    samplers = {
        "cs336 engine (CUDA graphs)": run_engine(None),
        "cs336 engine (graphs, unfused)": run_engine(None, fused=False),
        "cs336 engine (eager)": run_engine(False),
        "HF generate (DynamicCache)": run_hf(),
    }
    if args.hf_static:
        samplers["HF generate (static cache)"] = run_hf(cache_implementation="static")
    rows = {}
    for name, fn in samplers.items():
        try:
            times, warmup_s = _time(fn, args.repeats, synchronize, device)
        except Exception as e:  # a sampler that fails is reported, the others still run
            print(f"{name}: FAILED: {type(e).__name__}: {e}")
            continue
        rates = [n_tokens / t for t in times]
        rows[name] = {
            "median_tok_s": statistics.median(rates),
            "min_tok_s": min(rates),
            "max_tok_s": max(rates),
            "median_s": statistics.median(times),
            "warmup_s": warmup_s,
        }
    hf_rate = rows["HF generate (DynamicCache)"]["median_tok_s"]
    speedup = rows.get("cs336 engine (CUDA graphs)", {}).get("median_tok_s", 0.0) / hf_rate
    check = _logprob_check(ours, Engine(ours, None, device=device), prompts[:8], params)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(f"\n{name}, {args.dtype}, model d={args.d_model} L={args.layers} V={args.vocab}; "
          f"{args.prompts} prompts x {args.num_samples} samples, {args.prompt_tokens} prompt + "
          f"{args.max_new_tokens} new tokens, {args.repeats} repeats")  # fmt: skip
    print(f"{'sampler':<32}{'tokens/s (median)':>18}{'min':>10}{'max':>10}{'s/run':>8}"
          f"{'warm-up s':>10}{'vs HF':>7}")  # fmt: skip
    for k, r in rows.items():
        print(f"{k:<32}{r['median_tok_s']:>18,.0f}{r['min_tok_s']:>10,.0f}"
              f"{r['max_tok_s']:>10,.0f}{r['median_s']:>8.3f}{r['warmup_s']:>10.2f}"
              f"{r['median_tok_s'] / hf_rate:>6.2f}x")  # fmt: skip
    print(f"speedup (engine with CUDA graphs / HF generate): {speedup:.2f}x")
    print("check: the engine's log-probs vs a full forward over its completions, |diff| "
          f"median {check['median']:.4f}, max {check['max']:.4f}")  # fmt: skip
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"device": name, "args": vars(args), "rows": rows, "speedup": speedup,
                       "logprob_check": check}, f, indent=2)  # fmt: skip


def _time(fn, repeats, synchronize, device) -> tuple[list[float], float]:
    """Seconds of ``repeats`` calls after one warm-up call, and the warm-up's."""
    t0 = time.perf_counter()
    fn()
    warmup_s = time.perf_counter() - t0
    times = []
    for _ in range(repeats):
        synchronize(device)
        t0 = time.perf_counter()
        fn()
        synchronize(device)
        times.append(time.perf_counter() - t0)
    return times, warmup_s


@torch.inference_mode()
def _logprob_check(model, engine, prompts, params) -> dict[str, float]:
    """Score the engine's completions with one uncached forward: the fast path must
    sample from, and report the log-probs of, the model itself."""
    outs = engine.generate(prompts, params)
    seqs = [p + c.ids for p, o in zip(prompts, outs, strict=True) for c in o]
    ids = torch.tensor(seqs, device=engine.device)
    n = len(prompts[0])
    logits = model(ids)[:, n - 1 : -1].float()
    want = torch.log_softmax(logits, -1).gather(-1, ids[:, n:, None])[..., 0]
    got = torch.tensor([c.logprobs for o in outs for c in o], device=engine.device)
    diff = (got - want).abs()
    return {"median": float(diff.median()), "max": float(diff.max())}


if __name__ == "__main__":
    main()
