"""`ServiceSettings`: what the training service accepts and how it trains.

The defaults are the course's contract (ranges, FLOPs grid, 2e18 FLOPs per key, context
512); tests and CPU users pass tiny ones in a JSON file (``serve --settings``).
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

COURSE_FLOPS = (
    1e13,
    3e13,
    6e13,
    1e14,
    3e14,
    6e14,
    1e15,
    3e15,
    6e15,
    1e16,
    3e16,
    6e16,
    1e17,
    3e17,
    6e17,
    1e18,
)
CONFIG_FIELDS = ("d_model", "num_layers", "num_heads", "batch_size", "learning_rate", "train_flops")


@dataclass
class ServiceSettings:
    d_model: tuple[int, int] = (64, 1024)
    num_layers: tuple[int, int] = (2, 24)
    num_heads: tuple[int, int] = (2, 16)
    learning_rate: tuple[float, float] = (1e-4, 1e-3)
    batch_size: tuple[int, ...] = (128, 256)
    train_flops: tuple[float, ...] = COURSE_FLOPS
    budget: float = 2e18  # FLOPs per key unless the key was created with its own
    context_length: int = 512
    trainer: str = "cs336_scaling.trainer:train_run"  # module:function(config, settings) -> loss
    trainer_options: dict = field(default_factory=dict)  # extra keyword settings for the trainer
    token_file: str | None = None  # None: the shipped fortunes token file
    val_fraction: float = 0.05  # tail of the token file held out for the final loss
    eval_tokens: int = 262_144  # tokens of held-out text the final loss averages over
    precision: str = "auto"  # "auto": bf16 autocast on CUDA, fp32 on CPU
    executor: str = "local"  # submitit: "local" or "slurm"
    max_parallel: int = 0  # runs at once (0: one per visible GPU, or 1 on CPU)
    timeout_min: int = 240
    slurm: dict = field(default_factory=dict)  # e.g. {"slurm_partition": "gpu", "gpus_per_node": 1}
    seed: int = 0

    def __post_init__(self):
        for name in ("d_model", "num_layers", "num_heads", "learning_rate"):
            lo, hi = getattr(self, name)
            if not 0 < lo <= hi:
                raise ValueError(f"settings.{name} must be a range [lo, hi] with 0 < lo <= hi")
            setattr(self, name, (lo, hi))
        self.batch_size = tuple(int(b) for b in self.batch_size)
        self.train_flops = tuple(float(f) for f in self.train_flops)
        if not self.batch_size or not self.train_flops:
            raise ValueError("settings.batch_size and settings.train_flops must not be empty")
        if not (math.isfinite(self.budget) and self.budget > 0):
            raise ValueError(f"settings.budget must be > 0, got {self.budget}")
        if self.executor not in ("local", "slurm"):
            raise ValueError(f"settings.executor must be 'local' or 'slurm', got {self.executor!r}")
        if ":" not in self.trainer:
            raise ValueError(f"settings.trainer must be 'module:function', got {self.trainer!r}")
        if self.precision not in ("auto", "fp32", "bf16"):
            raise ValueError(
                f"settings.precision must be auto, fp32 or bf16, got {self.precision!r}"
            )

    @classmethod
    def from_file(cls, path: str | Path, **overrides) -> ServiceSettings:
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as e:
            raise ValueError(f"{path}: not a readable JSON file ({e})") from None
        if not isinstance(data, dict):
            raise ValueError(f"{path}: expected a JSON object of settings")
        return cls.from_dict({**data, **overrides}, str(path))

    @classmethod
    def from_dict(cls, data: dict, source: str = "settings") -> ServiceSettings:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(
                f"{source}: unknown setting(s) {unknown}; known: {', '.join(sorted(known))}"
            )
        try:
            return cls(**data)
        except (TypeError, ValueError) as e:
            raise ValueError(f"{source}: {e}") from None

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


class InvalidConfig(ValueError):
    """A query parameter is missing, malformed or out of range (message names it)."""


def validate_config(params: dict, settings: ServiceSettings) -> dict:
    """The course's checks, in its words: ``d_model must be in range [64, 1024], got 9999``."""
    config = {}
    for name in CONFIG_FIELDS:
        if name not in params or params[name] in ("", None):
            raise InvalidConfig(f"missing required parameter {name}")
        raw = params[name]
        try:
            value = float(raw)
        except (TypeError, ValueError):
            raise InvalidConfig(f"{name} must be a number, got {raw!r}") from None
        integral = name not in ("learning_rate", "train_flops")
        if integral:
            if not value.is_integer():
                raise InvalidConfig(f"{name} must be an integer, got {raw}")
            value = int(value)
        allowed = getattr(settings, name)
        if name in ("batch_size", "train_flops"):
            if value not in allowed:
                choices = ", ".join(f"{v:g}" if isinstance(v, float) else str(v) for v in allowed)
                raise InvalidConfig(f"{name} must be one of [{choices}], got {raw}")
        elif not allowed[0] <= value <= allowed[1]:
            raise InvalidConfig(
                f"{name} must be in range [{allowed[0]:g}, {allowed[1]:g}], got {raw}"
            )
        config[name] = value
    if config["d_model"] % config["num_heads"]:
        raise InvalidConfig(
            f"d_model ({config['d_model']}) must be divisible by num_heads ({config['num_heads']})"
        )
    return config


def non_embedding_params(config: dict) -> int:
    """The course's parameter count: 12 · num_layers · d_model²."""
    return 12 * config["num_layers"] * config["d_model"] ** 2


def tokens_for(config: dict) -> int:
    """Tokens a run trains on: train_flops / (6 · 12 · num_layers · d_model²)."""
    return int(config["train_flops"] // (6 * non_embedding_params(config)))
