"""The decode step's q/k/v and w1/w3 projections on a GPU, three ways, each replayed as a
CUDA graph over all layers (as the engine replays a step):

- ``stacked copy``: one GEMM over weights stacked into a copy (the engine until now: the
  copy, 2/3 of the layers' memory, was made per ``generate`` call);
- ``side by side``: the engine's `stacked_matmul`, GEMMs on the model's own weights into
  column slices of one output, run side by side on CUDA streams;
- ``one by one``: the same GEMMs, one after another on one stream.

Prints microseconds per decode step (median and spread over ``--repeats`` timings of
``--replays`` replays) for GPT-2-small and a 1.3B-parameter shape at two batch sizes.

  python packages/alignment/benchmarks/decode_gemm_bench.py
"""

from __future__ import annotations

import argparse
import statistics

import torch

from cs336_common.nn.decode_ops import stacked_matmul
from cs336_common.nn.layers import default_d_ff

SHAPES = {"GPT-2-small (d 768, 12 layers)": (768, 12), "1.3B (d 2048, 24 layers)": (2048, 24)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batches", type=int, nargs="+", default=[64, 512])
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--replays", type=int, default=50)
    args = p.parse_args()
    torch.manual_seed(0)
    print(f"{torch.cuda.get_device_name()}, bf16; us per decode step (q/k/v + w1/w3, all layers)")
    print(f"{'shape':<32}{'batch':>6}{'variant':>14}{'median':>9}{'min':>8}{'max':>8}"
          f"{'vs copy':>9}{'copy MiB':>10}")  # fmt: skip
    for name, (d, layers) in SHAPES.items():
        weights = [_layer(d) for _ in range(layers)]
        copy_mib = sum(w.nbytes for qkv, w13 in weights for w in (*qkv, *w13)) / 2**20
        for batch in args.batches:
            h = torch.randn(batch, d, device="cuda", dtype=torch.bfloat16)
            rows = _time_variants(h, weights, args.repeats, args.replays)
            base = rows["stacked copy"][0]
            for variant, (med, lo, hi) in rows.items():
                print(f"{name:<32}{batch:>6}{variant:>14}{med:>9.1f}{lo:>8.1f}{hi:>8.1f}"
                      f"{base / med:>8.2f}x{copy_mib:>10.0f}")  # fmt: skip


def _layer(d: int) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    def w(rows):
        return torch.randn(rows, d, device="cuda", dtype=torch.bfloat16) / d**0.5

    return [w(d), w(d), w(d)], [w(default_d_ff(d)), w(default_d_ff(d))]


def _one_by_one(h: torch.Tensor, weights: list[torch.Tensor]) -> torch.Tensor:
    sizes = [w.shape[0] for w in weights]
    out = h.new_empty(h.shape[0], sum(sizes))
    for w, cols in zip(weights, out.split(sizes, dim=1), strict=True):
        torch.mm(h, w.t(), out=cols)
    return out


def _time_variants(h, weights, repeats, replays) -> dict[str, tuple[float, float, float]]:
    stacked = [(torch.cat(qkv), torch.cat(w13)) for qkv, w13 in weights]
    variants = {
        "stacked copy": lambda: [(h @ a.t(), h @ b.t()) for a, b in stacked],
        "side by side": lambda: [(stacked_matmul(h, a), stacked_matmul(h, b)) for a, b in weights],
        "one by one": lambda: [(_one_by_one(h, a), _one_by_one(h, b)) for a, b in weights],
    }
    outs = {k: fn() for k, fn in variants.items()}  # warm-up, and the same numbers
    for k, out in outs.items():
        for (a, b), (a0, b0) in zip(out, outs["stacked copy"], strict=True):
            torch.testing.assert_close((a, b), (a0, b0), rtol=0.02, atol=0.02, msg=k)
    return {k: _time_graph(fn, repeats, replays) for k, fn in variants.items()}


def _time_graph(fn, repeats, replays) -> tuple[float, float, float]:
    """us per replay of ``fn`` captured as a CUDA graph: median, min, max of repeats."""
    torch.cuda.synchronize()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        fn()
    graph.replay()
    times = []
    for _ in range(repeats):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(replays):
            graph.replay()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end) * 1000 / replays)
    return statistics.median(times), min(times), max(times)


if __name__ == "__main__":
    main()
