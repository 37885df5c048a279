"""`ModelConfig`: every argument of `TransformerLM` in one JSON-round-trippable dataclass,
and `MODEL_PRESETS`, the model shapes the course uses."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cs336_common.nn.attention import ATTENTION_BACKENDS
from cs336_common.nn.layers import default_d_ff

# GPT-2 shapes (Radford et al. 2019) for the accounting problem of assignment 1, the
# sizes benchmarked in assignment 2, and the TinyStories model trained in assignment 1.
MODEL_PRESETS: dict[str, dict[str, Any]] = {
    **{
        f"gpt2-{name}": dict(
            vocab_size=50257, context_length=1024, d_model=d, num_layers=n, num_heads=h, d_ff=4 * d
        )
        for name, (d, n, h) in {
            "small": (768, 12, 12),
            "medium": (1024, 24, 16),
            "large": (1280, 36, 20),
            "xl": (1600, 48, 25),
        }.items()
    },
    **{
        name: dict(
            vocab_size=10000, context_length=1024, d_model=d, num_layers=n, num_heads=h, d_ff=f
        )
        for name, (d, f, n, h) in {
            "small": (768, 3072, 12, 12),
            "medium": (1024, 4096, 24, 16),
            "large": (1280, 5120, 36, 20),
            "xl": (1600, 6400, 48, 25),
            "2.7b": (2560, 10240, 32, 32),
        }.items()
    },
    "tinystories": dict(
        vocab_size=10000, context_length=256, d_model=512, num_layers=4, num_heads=16, d_ff=1344
    ),
}


@dataclass
class ModelConfig:
    """Shape and variant of a `TransformerLM`.

    The flags select the course's ablations (defaults give the standard model):
    ``use_rmsnorm=False`` removes every RMSNorm; ``norm_position="post"`` normalises
    after each residual add (and drops ``ln_final``); ``use_rope=False`` is NoPE;
    ``ffn="silu"`` is an ungated SiLU feed-forward of width ``3·d_ff/2``, which has the
    parameter count of a SwiGLU of width ``d_ff``; ``tie_embeddings=True`` shares the
    token embedding with the LM head. ``d_ff=None`` means ``default_d_ff(d_model)``.
    """

    vocab_size: int
    context_length: int
    d_model: int
    num_layers: int
    num_heads: int
    d_ff: int | None = None
    rope_theta: float = 10000.0
    use_rmsnorm: bool = True
    norm_position: str = "pre"
    use_rope: bool = True
    ffn: str = "swiglu"
    tie_embeddings: bool = False
    attention_backend: str | Callable = "naive"

    def __post_init__(self):
        for name in ("vocab_size", "context_length", "d_model", "num_layers", "num_heads", "d_ff"):
            if name == "d_ff" and self.d_ff is None:  # d_model is checked by now
                self.d_ff = default_d_ff(self.d_model)
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"ModelConfig.{name} must be a positive int, got {value!r}")
        if self.d_model % self.num_heads:
            raise ValueError(
                f"ModelConfig.d_model ({self.d_model}) must be divisible by "
                f"num_heads ({self.num_heads})"
            )
        if self.use_rope and self.d_head % 2:
            raise ValueError(
                f"RoPE needs an even head dimension; d_model/num_heads = {self.d_head}"
            )
        for name in ("use_rmsnorm", "use_rope", "tie_embeddings"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(
                    f"ModelConfig.{name} must be true or false, got {getattr(self, name)!r}"
                )
        theta = self.rope_theta
        if isinstance(theta, bool) or not isinstance(theta, int | float) or not theta > 0:
            raise ValueError(
                f"ModelConfig.rope_theta must be a number > 0, got {self.rope_theta!r}"
            )
        _check_choice("norm_position", self.norm_position, ("pre", "post"))
        _check_choice("ffn", self.ffn, ("swiglu", "silu"))
        if not callable(self.attention_backend):
            _check_choice("attention_backend", self.attention_backend, ATTENTION_BACKENDS)

    @property
    def d_head(self) -> int:
        return self.d_model // self.num_heads

    @property
    def d_ff_effective(self) -> int:
        """Hidden width of the feed-forward actually built (SiLU: 3·d_ff/2)."""
        return self.d_ff if self.ffn == "swiglu" else 3 * self.d_ff // 2

    @classmethod
    def from_preset(cls, name: str, **overrides) -> ModelConfig:
        """``ModelConfig.from_preset("gpt2-small", attention_backend="torch")``."""
        if name not in MODEL_PRESETS:
            raise KeyError(f"unknown model preset {name!r}; known: {', '.join(MODEL_PRESETS)}")
        return cls(**{**MODEL_PRESETS[name], **overrides})

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(
                f"unknown ModelConfig field(s) {unknown}; known: {', '.join(sorted(known))}"
            )
        return cls(**d)

    def to_json(self, **kwargs) -> str:
        if callable(self.attention_backend):
            raise ValueError(
                "a ModelConfig with a callable attention_backend cannot be saved as JSON; "
                "store 'naive' or 'torch' and pass the callable when building the model"
            )
        return json.dumps(self.to_dict(), **{"indent": 2, **kwargs})

    @classmethod
    def from_json(cls, s: str) -> ModelConfig:
        return cls.from_dict(json.loads(s))


def _check_choice(name: str, value: Any, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"ModelConfig.{name} must be one of {allowed}, got {value!r}")
