"""Compile every candidate config of the flash kernels for Hopper (sm_90), no GPU needed.

Run by ``test_nn_flash_compile.py`` in a subprocess (the test process runs Triton in its
interpreter, whose kernels cannot be compiled). Prints one JSON line per compile.

    python flash_compile_hopper.py SHARD NUM_SHARDS
"""

import itertools
import json
import sys

import triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource

from cs336_common.nn import flash_attention as fa

HOPPER = GPUTarget("cuda", 90, 32)
KERNELS = {"fwd": fa._flash_fwd, "kv": fa._flash_bwd_kv, "dq": fa._flash_bwd_dq}
# kind of input -> (head dim, dot precision, element type) of a call that picks it;
# exact fp32 at d 64: its d = 128 compile alone takes a quarter of a minute
KINDS = {
    "16bit_d32": (32, "tf32", "bf16"),
    "16bit_d64": (64, "tf32", "bf16"),
    "16bit_d128": (128, "tf32", "fp16"),
    "tf32": (128, "tf32", "fp32"),
    "ieee": (64, "ieee", "fp32"),
}
FLOAT32_POINTERS = {"L", "Delta", "Cos", "Sin"}
TENSOR_POINTERS = {"Q", "K", "V", "O", "dO", "dQ", "dK", "dV"} | FLOAT32_POINTERS


def _signature(fn, constexprs: dict, dtype: str) -> dict:
    def type_of(name):
        if name in constexprs:
            return "constexpr"
        if name in TENSOR_POINTERS:
            return "*fp32" if name in FLOAT32_POINTERS else f"*{dtype}"
        return "fp32" if name in ("qk_scale", "sm_scale") else "i32"

    return {name: type_of(name) for name in fn.arg_names}


def jobs():
    """(kernel, kind, config, causal) for every candidate, as calls would launch them."""
    for (kernel, kind), causal in itertools.product(
        itertools.product(KERNELS, KINDS), (True, False)
    ):
        for config in fa._SPACES[kernel][kind]:
            yield kernel, kind, config, causal


def compile_one(kernel: str, kind: str, config: tuple, causal: bool) -> dict:
    d, precision, dtype = KINDS[kind]
    a, b, warps, stages, *maxnreg = config
    fn = KERNELS[kernel].fn
    names = fa._BLOCK_NAMES[kernel]
    constexprs = dict(
        HEAD_DIM=d, BLOCK_D=max(16, d), IS_CAUSAL=causal, DOT_PRECISION=precision,
        USE_TMA=dtype != "fp32", **{names[0]: a, names[1]: b},
    )  # fmt: skip
    if "ROPE" in fn.arg_names:
        constexprs["ROPE"] = causal  # the LM's path: causal, RoPE un-rotated in the epilogue
    options = dict(num_warps=warps, num_stages=stages, maxnreg=maxnreg[0] if maxnreg else None)
    row = dict(kernel=kernel, kind=kind, config=list(config), causal=causal)
    try:
        compiled = triton.compile(
            ASTSource(fn, _signature(fn, constexprs, dtype), constexprs),
            target=HOPPER,
            options=options,
        )
    except Exception as e:  # reported to the test, which fails on it
        lines = str(e).strip().splitlines()
        return row | dict(error=f"{type(e).__name__}: {lines[-1] if lines else ''}"[:300])
    return row | dict(shared=compiled.metadata.shared)


if __name__ == "__main__":
    shard, shards = int(sys.argv[1]), int(sys.argv[2])
    for i, job in enumerate(jobs()):
        if i % shards == shard:
            print(json.dumps(compile_one(*job)), flush=True)
