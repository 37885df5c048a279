"""Training-step time of each data-parallel variant (the `cs336-systems ddp-bench`
measurement).

Variants: ``naive`` (blocking all-reduce per gradient after backward), ``flat`` (one
all-reduce of all gradients), ``individual`` (`DDPIndividualParameters`), ``bucketed``
(`DDPBucketed`, ``--bucket-mb``), ``torch`` (`torch.nn.parallel.DistributedDataParallel`
at its best settings: same bucket size, ``gradient_as_bucket_view=True``),
``torch-default`` (the same at PyTorch's default ``gradient_as_bucket_view=False``),
``sharded`` (bucketed + `ShardedOptimizer`), ``fsdp`` (`FullyShardedDataParallel`),
``torch-fsdp`` (PyTorch's FSDP2 ``fully_shard`` on every block, then the root; NCCL
only). All train with fused AdamW on ``--batch-size`` random sequences per rank. A
``compute`` row runs the same step with no communication at all; each variant's
``comm_ms`` is its step time minus that, i.e. the communication it fails to hide.
``sync_ms`` is the time spent in the explicit gradient sync after backward and
``opt_ms`` the optimizer step (which includes the sharded optimizer's all-gathers).
``host_ms`` is the time the host took to issue forward and backward (gradient hooks
included) before waiting for the device: close to ``fwd_bwd_ms``, the step is bound by
the host; well below it, by the GPU.

Drift between runs (clocks, the host) is larger than some differences between variants,
so the variants are interleaved: ``--rounds`` rounds each build and time every variant
once, in an order rotated by one each round. A round's time is the mean over ``--steps``
steps after ``--warmup``, from the slowest rank; the table gives the median over rounds
with the spread (max - min) / median, and ``vs_ref`` = the median over rounds of the
step time over that round's reference (``torch-fsdp`` for ``fsdp``, ``torch`` for the
rest), with its smallest and largest value (``vs_ref_min``, ``vs_ref_max``). ``loss`` is
rank 0's after the last step of the last round: every communicating variant trains the
same model on the same data, so they agree up to rounding. Memory is the peak allocated
on the GPU (max over ranks and rounds; ``start_mem_gib`` is what was allocated before
the variant built its model, 0 unless something leaked) and the optimizer state held per
rank (a DTensor's local shard for FSDP2).
``ddp_bench_rounds.csv`` keeps every round.
"""

from __future__ import annotations

import argparse

VARIANTS = (
    "naive",
    "flat",
    "individual",
    "bucketed",
    "torch",
    "torch-default",
    "sharded",
    "fsdp",
    "torch-fsdp",
)


NCCL_ONLY = ("torch-fsdp",)  # FSDP2 hung on gloo (CPU) in our tries


REFERENCE = {"fsdp": "torch-fsdp"}  # a variant's reference in vs_ref; default "torch"


def model_config(args: argparse.Namespace):
    from cs336_common import load_model_config

    # a bad name is an InputError or FileNotFoundError: one line from the CLI runner
    return load_model_config(
        args.model, context_length=args.context_length, attention_backend="torch"
    )


def bench_ddp(args: argparse.Namespace) -> list[dict]:
    """One row per variant and round; each round runs every variant (the ``compute``
    baseline too) in an order rotated by one from the last. Collective over the group."""
    import torch

    if torch.cuda.is_available():
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    names = ["compute", *args.variant]
    rows = []
    for r in range(args.rounds):
        k = r % len(names)
        for v in names[k:] + names[:k]:
            rows.append({"round": r, **_bench_variant(v, args)})
    return rows


def _bench_variant(variant: str, args: argparse.Namespace) -> dict:
    import gc
    import itertools

    import torch
    import torch.distributed as dist
    from torch.distributed.tensor import DTensor

    from cs336_common import TransformerLM
    from cs336_common.train import LoopConfig, TrainLoop
    from cs336_systems.dist_utils import current_device

    device = current_device()
    cfg = model_config(args)
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    # anything still allocated here leaked from an earlier variant and inflates the peak
    start = torch.cuda.memory_allocated(device) if device.type == "cuda" else float("nan")
    torch.manual_seed(0)
    model = TransformerLM.from_config(cfg, device=device)
    wrapped, sync, opt = _wrap(variant, model, args)
    g = torch.Generator(device=device).manual_seed(dist.get_rank())
    ids = torch.randint(
        0, cfg.vocab_size, (args.batch_size, args.context_length + 1), device=device, generator=g
    )
    clock = _PhaseClock(device, args.warmup)
    loop = TrainLoop(
        model,
        opt,
        itertools.repeat((ids[:, :-1], ids[:, 1:])),
        LoopConfig(max_steps=args.warmup + args.steps, precision=args.dtype, log_every=10**9),
        wrap=lambda _: wrapped,
        sync_gradients=sync,
        on_phase=clock,
    )
    result = loop.run()
    times = {k: v / args.steps for k, v in clock.totals.items()}
    local = [
        v.to_local() if isinstance(v, DTensor) else v
        for s in opt.state.values()
        for v in s.values()
    ]
    state_bytes = sum(v.numel() * v.element_size() for v in local if torch.is_tensor(v))
    peak = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else float("nan")
    stats = [*times.values(), clock.host / args.steps, start, peak, state_bytes]
    stats = torch.tensor(stats, dtype=torch.float64, device=device)
    dist.all_reduce(stats, op=dist.ReduceOp.MAX)  # the slowest rank, the fullest memory
    fwd_bwd, sync_s, opt_s, host_s, start, peak, state_bytes = stats.tolist()
    del sync, opt, model, loop
    return {
        "variant": variant,
        "step_ms": (fwd_bwd + sync_s + opt_s) * 1e3,
        "fwd_bwd_ms": fwd_bwd * 1e3,
        "sync_ms": sync_s * 1e3,
        "opt_ms": opt_s * 1e3,
        "host_ms": host_s * 1e3,
        "start_mem_gib": start / 2**30,
        "peak_mem_gib": peak / 2**30,
        "opt_state_gib": state_bytes / 2**30,
        "loss": result.train_loss,
    }


class _PhaseClock:
    """`TrainLoop`'s ``on_phase`` hook: seconds per phase, summed over the steps after
    ``warmup`` (the device is synchronised at every phase boundary), and ``host``: the
    seconds forward+backward took to issue, before the wait for the device."""

    def __init__(self, device, warmup: int):
        self.device, self.warmup, self.steps = device, warmup, 0
        self.totals = {"fwd_bwd": 0.0, "sync": 0.0, "opt": 0.0}
        self.host = 0.0

    def __call__(self, phase: str) -> None:
        import time

        from cs336_common.device import synchronize

        issued = time.perf_counter()
        synchronize(self.device)
        now = time.perf_counter()
        if phase != "start" and self.steps >= self.warmup:
            key = {"forward_backward": "fwd_bwd", "sync": "sync", "optimizer": "opt"}[phase]
            self.totals[key] += now - self._last
            if key == "fwd_bwd":
                self.host += issued - self._last
        self.steps += phase == "optimizer"
        self._last = now


def _wrap(variant: str, model, args: argparse.Namespace):
    """(callable model, gradient sync after backward, optimizer) for a variant."""
    import torch
    from torch.nn.parallel import DistributedDataParallel

    from cs336_systems import (
        DDPBucketed,
        DDPIndividualParameters,
        FullyShardedDataParallel,
        ShardedOptimizer,
        all_reduce_gradients,
        all_reduce_gradients_flat,
    )
    from cs336_systems.ddp import broadcast_module

    adamw = dict(lr=1e-4, weight_decay=0.1, fused=model.lm_head.weight.is_cuda)
    no_sync = lambda: None  # noqa: E731
    if variant == "compute":
        return model, no_sync, torch.optim.AdamW(model.parameters(), **adamw)
    if variant in ("naive", "flat"):
        broadcast_module(model)
        reduce = all_reduce_gradients if variant == "naive" else all_reduce_gradients_flat
        return model, lambda: reduce(model), torch.optim.AdamW(model.parameters(), **adamw)
    if variant == "individual":
        ddp = DDPIndividualParameters(model)
        return (
            ddp,
            ddp.finish_gradient_synchronization,
            torch.optim.AdamW(model.parameters(), **adamw),
        )
    if variant in ("bucketed", "sharded"):
        ddp = DDPBucketed(model, args.bucket_mb)
        opt = (
            torch.optim.AdamW(model.parameters(), **adamw)
            if variant == "bucketed"
            else ShardedOptimizer(model.parameters(), torch.optim.AdamW, **adamw)
        )
        return ddp, ddp.finish_gradient_synchronization, opt
    if variant in ("torch", "torch-default"):
        ids = [model.lm_head.weight.device.index] if model.lm_head.weight.is_cuda else None
        ddp = DistributedDataParallel(
            model,
            device_ids=ids,
            bucket_cap_mb=args.bucket_mb,
            gradient_as_bucket_view=variant == "torch",
        )
        return ddp, no_sync, torch.optim.AdamW(model.parameters(), **adamw)
    if variant == "torch-fsdp":
        from torch.distributed.fsdp import fully_shard

        for block in model.layers:
            fully_shard(block)
        fully_shard(model)
        return model, no_sync, torch.optim.AdamW(model.parameters(), **adamw)
    fsdp = FullyShardedDataParallel(model)
    return fsdp, no_sync, torch.optim.AdamW(fsdp.parameters(), **adamw)


def write_ddp_report(rounds: list[dict], args: argparse.Namespace) -> None:
    from cs336_systems.bench.harness import markdown_table, write_csv

    rows = _summarize(rounds)
    print(
        f"model {args.model}, {args.batch_size} x {args.context_length} tokens per rank, "
        f"{args.dtype}, {args.rounds} interleaved rounds of {args.steps} steps"
    )
    print(markdown_table(rows))
    write_csv(args.out / "ddp_bench.csv", rows)
    write_csv(args.out / "ddp_bench_rounds.csv", rounds)
    print(f"wrote {args.out / 'ddp_bench.csv'} and ddp_bench_rounds.csv")


_PHASES = ("fwd_bwd_ms", "host_ms", "sync_ms", "opt_ms")


def _summarize(rounds: list[dict]) -> list[dict]:
    """Per variant (in first-round order of the baseline, then the variants as asked):
    medians over rounds, the spread of the step time, and the per-round ratio to the
    reference's step time in the same round."""
    from statistics import median

    by_variant: dict[str, list[dict]] = {}
    for r in sorted(rounds, key=lambda r: r["round"]):
        by_variant.setdefault(r["variant"], []).append(r)
    step = {v: {r["round"]: r["step_ms"] for r in rs} for v, rs in by_variant.items()}
    compute = median(step["compute"].values())
    rows = []
    for v, rs in by_variant.items():
        times = [r["step_ms"] for r in rs]
        ref = REFERENCE.get(v, "torch")
        ratios = [t / step[ref][r["round"]] for r, t in zip(rs, times, strict=True) if ref in step]
        rows.append(
            {
                "variant": v,
                "step_ms": median(times),
                "spread_pct": 100 * (max(times) - min(times)) / median(times),
                **{k: median(r[k] for r in rs) for k in _PHASES},
                "comm_ms": median(times) - compute,
                "vs_ref": median(ratios) if ratios else float("nan"),
                "vs_ref_min": min(ratios) if ratios else float("nan"),
                "vs_ref_max": max(ratios) if ratios else float("nan"),
                "ref": ref if ratios else "",
                "start_mem_gib": max(r["start_mem_gib"] for r in rs),
                "peak_mem_gib": max(r["peak_mem_gib"] for r in rs),
                "opt_state_gib": rs[-1]["opt_state_gib"],
                "loss": rs[-1]["loss"],
            }
        )
    return rows
