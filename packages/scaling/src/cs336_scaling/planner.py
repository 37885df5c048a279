"""Model shapes for IsoFLOPs profiles: several sizes per compute budget, each a concrete
(d_model, num_layers, num_heads) inside the service's ranges."""

from __future__ import annotations

import math

import numpy as np

from cs336_scaling.settings import non_embedding_params, tokens_for

ASPECT = 64.0  # d_model / num_layers of the usual GPT shapes (GPT-2 small: 768 / 12)
HEAD_DIM = 64
SPAN = 4.0  # a profile reaches this factor either side of the Chinchilla guess


def shapes(d_range, layer_range, head_range) -> list[tuple[int, int, int]]:
    """Every (d_model, num_layers, num_heads) of the ranges: d_model in steps of 64 (16 for
    tiny ranges), heads of width ~64 that divide d_model."""
    step = 64 if d_range[0] >= 64 else 16
    out = []
    for d in range(math.ceil(d_range[0] / step) * step, int(d_range[1]) + 1, step):
        heads = _heads(d, head_range)
        if heads is None:
            continue
        out += [(d, n, heads) for n in range(int(layer_range[0]), int(layer_range[1]) + 1)]
    return out


def _heads(d: int, head_range) -> int | None:
    fits = [h for h in range(int(head_range[0]), int(head_range[1]) + 1) if d % h == 0]
    return min(fits, key=lambda h: abs(math.log(d / h / HEAD_DIM)), default=None)


def closest_shape(target_params: float, candidates) -> tuple[int, int, int]:
    """The shape whose 12·L·d² is nearest ``target_params`` (in log), preferring the usual
    aspect ratio when two are about as near."""

    def cost(shape):
        d, n, _ = shape
        size = abs(math.log(12 * n * d * d / target_params))
        return size + 0.15 * abs(math.log(d / n / ASPECT))

    return min(candidates, key=cost)


def plan_profile(
    budget: float,
    candidates,
    points: int,
    batch_size: int,
    learning_rate: float,
    context_length: int,
    span: float = SPAN,
) -> list[dict]:
    """Up to ``points`` configurations at one budget, log-spaced around the Chinchilla
    guess ``D = 20 N`` (``N = sqrt(C / 120)``) over a factor ``span`` either side; only
    shapes that train for at least ten steps."""
    center = math.sqrt(budget / 120)
    configs = {}
    for target in np.geomspace(center / span, center * span, points):
        config = _query(float(target), candidates, budget, batch_size, learning_rate)
        if _trains_ten_steps(config, context_length):
            configs.setdefault((config["d_model"], config["num_layers"]), config)
    return sorted(configs.values(), key=non_embedding_params)


def _query(target_params, candidates, budget, batch_size, learning_rate) -> dict:
    """The service query for the shape nearest ``target_params`` at ``budget``."""
    d, n, h = closest_shape(target_params, candidates)
    return dict(
        d_model=d,
        num_layers=n,
        num_heads=h,
        batch_size=batch_size,
        learning_rate=learning_rate,
        train_flops=budget,
    )


def _trains_ten_steps(config: dict, context_length: int) -> bool:
    return tokens_for(config) >= 10 * config["batch_size"] * context_length


def profile_step(points: int, span: float = SPAN) -> float:
    """The factor between neighbouring sizes of a ``points``-point profile."""
    return (span * span) ** (1 / max(points - 1, 1))


def edge_extension(
    runs: list[dict],
    candidates,
    step: float,
    batch_size: int,
    learning_rate: float,
    context_length: int,
) -> list[dict]:
    """Where the lowest loss of an answered profile (``runs`` at one budget, at least three)
    lies at its smallest or largest model, the next shape beyond that edge, a factor
    ``step`` further out: the minimum the fits need must have a point on either side.
    Empty when the minimum is inside, or when the service's ranges have no further shape."""
    if len(runs) < 3:
        return []
    runs = sorted(runs, key=non_embedding_params)
    best = min(range(len(runs)), key=lambda i: runs[i]["final_loss"])
    if best not in (0, len(runs) - 1):
        return []
    edge = runs[best]
    target = non_embedding_params(edge) * (step if best else 1 / step)
    config = _query(target, candidates, edge["train_flops"], batch_size, learning_rate)
    # the ranges may have no shape further out: the closest is then the edge itself
    ratio = non_embedding_params(config) / non_embedding_params(edge)
    outward = ratio < 1 if best == 0 else ratio > 1
    if not outward or not _trains_ten_steps(config, context_length):
        return []
    return [config]
