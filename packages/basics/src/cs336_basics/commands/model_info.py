"""Parameter count, memory and forward FLOPs of Transformer LM shapes, per component.

The accounting problem of CS336 assignment 1: with no --config, prints GPT-2
small/medium/large/XL side by side. FLOPs are the matrix multiplies of one forward
pass over one sequence of --seq-len tokens (default: each model's context length);
attention counts the full seq × seq score matrix.

Examples:
  cs336-basics model-info
  cs336-basics model-info --config gpt2-xl --seq-len 16384
  cs336-basics model-info --config runs/ts/config.json '{"vocab_size": 10000, ...}'
  cs336-basics model-info --config packages/basics/src/cs336_basics/configs/owt.toml
"""

from __future__ import annotations

import json
from pathlib import Path

from cs336_common.cli import positive_int
from cs336_common.errors import InputError

GPT2 = ["gpt2-small", "gpt2-medium", "gpt2-large", "gpt2-xl"]
_FLOP_ROWS = [
    ("attention_projections", "  attention q/k/v/out"),
    ("attention_scores", "  attention Q·Kᵀ"),
    ("attention_weighted_sum", "  attention softmax·V"),
    ("ffn", "  feed-forward"),
    ("lm_head", "  LM head"),
]


def add_arguments(parser):
    parser.add_argument(
        "--config",
        nargs="+",
        default=GPT2,
        metavar="NAME_OR_JSON",
        help="preset names, config files (TOML/YAML/JSON, their 'model' section), shipped "
        "config names or inline JSON; default: the four GPT-2 sizes",
    )
    parser.add_argument(
        "--seq-len",
        type=positive_int,
        default=None,
        help="tokens per sequence (default: context_length)",
    )
    parser.add_argument("--json", action="store_true", help="print the numbers as JSON")


def run(args):
    from cs336_common.nn import MODEL_PRESETS, count_parameters, flops_per_token

    rows = {}
    for spec in args.config:
        name, cfg = _load(spec, MODEL_PRESETS)
        seq = cfg.context_length if args.seq_len is None else args.seq_len
        flops = {k: v * seq for k, v in flops_per_token(cfg, seq).items()}
        params = count_parameters(cfg)
        rows[name] = dict(seq_len=seq, params=params, fp32_bytes=4 * params["total"], flops=flops)
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        print(_table(rows))


def _load(spec: str, presets):
    """(column name, ModelConfig) of a preset, inline JSON, config file, shipped config
    name or run directory, read by `cs336_common.load_model_config`."""
    from cs336_basics.train_config import shipped_configs
    from cs336_common.nn import load_model_config

    folders = {p.parent for p in shipped_configs().values()}
    try:
        cfg = load_model_config(spec, config_dirs=folders)
    except FileNotFoundError:
        raise InputError(
            f"--config {spec!r} is neither a preset ({', '.join(presets)}), a config file, "
            "a run directory, a shipped config nor inline JSON"
        ) from None
    except (ValueError, TypeError) as e:
        raise InputError(f"--config {e}") from None
    if spec in presets:
        return spec, cfg
    return ("json" if spec.lstrip().startswith("{") else Path(spec).stem), cfg


def _si(x: float, unit: str = "") -> str:
    for scale, prefix in ((1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= scale:
            return f"{x / scale:.2f} {prefix}{unit}"
    return f"{x:.0f} {unit}".rstrip()


def _count(n: int) -> str:
    return f"{n / 1e9:.2f}B" if n >= 1e9 else f"{n / 1e6:.2f}M"


def _table(rows: dict) -> str:
    names = list(rows)
    table = [["", *names]]
    table.append(["sequence length", *(str(r["seq_len"]) for r in rows.values())])
    table.append(["parameters", *(_count(r["params"]["total"]) for r in rows.values())])
    table.append(
        ["  non-embedding", *(_count(r["params"]["non_embedding"]) for r in rows.values())]
    )
    table.append(["memory, fp32", *(f"{r['fp32_bytes'] / 2**30:.2f} GiB" for r in rows.values())])
    table.append(["forward FLOPs", *(_si(r["flops"]["total"], "FLOP") for r in rows.values())])
    for key, label in _FLOP_ROWS:
        cells = []
        for r in rows.values():
            f = r["flops"]
            cells.append(f"{_si(f[key])} ({100 * f[key] / f['total']:.1f}%)")
        table.append([label, *cells])
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    lines = [
        "  ".join(
            c.ljust(w) if i == 0 else c.rjust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        )
        for row in table
    ]
    title = "forward pass of one sequence: matmul FLOPs (2·m·n·k) per component"
    return "\n".join([title, "", *lines])
