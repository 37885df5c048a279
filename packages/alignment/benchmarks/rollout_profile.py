"""Where a rollout's GPU time goes: one `Engine.generate` call of the rollout benchmark's
default shape (GPT-2-small, 64 prompts x 8 samples, 64 + 128 tokens, bf16) under the
PyTorch profiler, after a warm-up call; prints the kernels by CUDA time.

  python packages/alignment/benchmarks/rollout_profile.py
"""

import torch
from torch.profiler import ProfilerActivity, profile

from cs336_common import TransformerLM
from cs336_common.engine import Engine, SamplingParams


def main() -> None:
    torch.manual_seed(0)
    model = TransformerLM(
        50304, 192, 768, 12, 12, attention_backend="torch", device="cuda", dtype=torch.bfloat16
    ).eval()
    prompts = torch.randint(0, 50304, (64, 64)).tolist()
    engine, params = Engine(model, None), SamplingParams(128, num_samples=8)
    engine.generate(prompts, params)  # warm-up: Triton compiles, the config is picked
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        engine.generate(prompts, params)
        torch.cuda.synchronize()
    table = prof.key_averages().table(sort_by="cuda_time_total", row_limit=25)
    print(table)


if __name__ == "__main__":
    main()
