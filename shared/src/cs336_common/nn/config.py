"""`ModelConfig`: every argument of `TransformerLM` in one JSON-round-trippable dataclass;
`MODEL_PRESETS`, the model shapes the course uses; and `load_model_config`, the one way
every command turns a preset name, a config file or a run directory into a model."""

from __future__ import annotations

import dataclasses
import json
import os
import tomllib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
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
    # for smoke runs and tests on a CPU: every code path, in milliseconds
    "tiny": dict(
        vocab_size=256, context_length=64, d_model=64, num_layers=2, num_heads=4, d_ff=128
    ),
}

# Architectures without a fixed shape: ``ModelConfig.from_architecture(name, d_model=..)``.
# "scaling-api": the model the course's scaling-laws training API trained (assignment 3):
# learned absolute positions, LayerNorm, a GeLU MLP of width 4·d_model, dropout 0.1,
# untied embeddings, context 512.
ARCHITECTURES: dict[str, dict[str, Any]] = {
    "scaling-api": dict(
        context_length=512,
        use_rope=False,
        absolute_positions=True,
        norm_type="layernorm",
        ffn="gelu",
        dropout=0.1,
        tie_embeddings=False,
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
    token embedding with the LM head. ``d_ff=None`` means ``default_d_ff(d_model)``
    (``4·d_model`` for ``ffn="gelu"``). GPT-2-style options: ``norm_type="layernorm"``,
    ``ffn="gelu"`` (``w2(gelu(w1 x))``), ``absolute_positions=True`` (learned position
    embeddings added to the token embeddings), ``dropout`` (on the embeddings and on each
    residual branch, training mode only).
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
    norm_type: str = "rmsnorm"
    absolute_positions: bool = False
    dropout: float = 0.0

    def __post_init__(self):
        for name in ("vocab_size", "context_length", "d_model", "num_layers", "num_heads", "d_ff"):
            if name == "d_ff" and self.d_ff is None:  # d_model is checked by now
                self.d_ff = 4 * self.d_model if self.ffn == "gelu" else default_d_ff(self.d_model)
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
        for name in ("use_rmsnorm", "use_rope", "tie_embeddings", "absolute_positions"):
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
        _check_choice("ffn", self.ffn, ("swiglu", "silu", "gelu"))
        _check_choice("norm_type", self.norm_type, ("rmsnorm", "layernorm"))
        p = self.dropout
        if isinstance(p, bool) or not isinstance(p, int | float) or not 0 <= p < 1:
            raise ValueError(f"ModelConfig.dropout must be a number in [0, 1), got {p!r}")
        if not callable(self.attention_backend):
            _check_choice("attention_backend", self.attention_backend, ATTENTION_BACKENDS)

    @property
    def d_head(self) -> int:
        return self.d_model // self.num_heads

    @property
    def d_ff_effective(self) -> int:
        """Hidden width of the feed-forward actually built (SiLU: 3·d_ff/2)."""
        return 3 * self.d_ff // 2 if self.ffn == "silu" else self.d_ff

    @classmethod
    def from_architecture(cls, name: str, **shape) -> ModelConfig:
        """``ModelConfig.from_architecture("scaling-api", vocab_size=10000, d_model=256,
        num_layers=4, num_heads=4)``: a named variant (`ARCHITECTURES`) at any shape."""
        if name not in ARCHITECTURES:
            raise KeyError(f"unknown architecture {name!r}; known: {', '.join(ARCHITECTURES)}")
        return cls(**{**ARCHITECTURES[name], **shape})

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


def load_model_config(
    spec: str | os.PathLike | Mapping[str, Any],
    *,
    config_dirs: Iterable[str | os.PathLike] = (),
    **overrides: Any,
) -> ModelConfig:
    """The `ModelConfig` that ``spec`` names, with ``overrides`` (field=value) applied.

    ``spec`` is one of: a preset name (`MODEL_PRESETS`: ``tiny``, ``small``, ``gpt2-xl``,
    ...); inline JSON (``'{"vocab_size": 256, ...}'``); a JSON, TOML or YAML file, whose
    ``model`` table is used (the whole file when it has none); a run directory, whose
    config.json's ``model`` is used; or a mapping like a ``model`` table. In a model table,
    ``preset = NAME`` starts from a preset. A file may name a ``base`` file (relative to
    itself) whose model it extends. A name that is not a preset or a path is looked up
    as ``<dir>/<name>.toml`` in ``config_dirs`` (a package's shipped configs).

    Raises FileNotFoundError or `InputError` (a ValueError) naming the spec.
    """
    from cs336_common.errors import InputError

    try:
        if isinstance(spec, Mapping):
            section = dict(spec)
        elif str(spec) in MODEL_PRESETS:
            section = {"preset": str(spec)}
        elif str(spec).lstrip().startswith("{"):
            section = _model_section(json.loads(str(spec)), None, config_dirs, ())
        else:
            path = _find(spec, None, config_dirs)
            section = _model_section(_read(path), path, config_dirs, (path,))
        preset = section.pop("preset", None)
        if preset is not None and preset not in MODEL_PRESETS:
            raise ValueError(f"unknown preset {preset!r}; known: {', '.join(MODEL_PRESETS)}")
        base = MODEL_PRESETS[preset] if preset is not None else {}
        return ModelConfig.from_dict({**base, **section, **overrides})
    except (ValueError, TypeError, KeyError) as e:
        where = "" if isinstance(spec, Mapping) else f"model {str(spec)!r}: "
        raise InputError(f"{where}{e}") from None


def _find(spec: str | os.PathLike, relative_to: Path | None, config_dirs) -> Path:
    path = Path(spec)
    candidates = [relative_to / path] if relative_to is not None else []
    candidates += [path, *(Path(d) / f"{spec}.toml" for d in config_dirs)]
    for candidate in candidates:
        if candidate.is_dir() and (candidate / "config.json").is_file():
            return candidate / "config.json"  # a run directory
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(
        f"model {str(spec)!r} is neither a preset ({', '.join(MODEL_PRESETS)}), a config "
        "file nor a run directory"
    )


def _read(path: Path) -> dict[str, Any]:
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".json":
        d = json.loads(text)
    elif path.suffix in (".yaml", ".yml"):
        import yaml  # optional: only YAML configs need PyYAML

        d = yaml.safe_load(text)
    else:
        try:
            d = tomllib.loads(text)
        except tomllib.TOMLDecodeError as e:
            raise ValueError(f"{path}: {e}") from None
    if not isinstance(d, dict):
        raise ValueError(f"{path}: expected a table of settings at the top level")
    return d


def _model_section(d: dict, path: Path | None, config_dirs, seen: tuple) -> dict[str, Any]:
    """The ``model`` table of a config (the whole config when it is one), merged over the
    model of its ``base`` chain."""
    if "model" in d:
        section = dict(d["model"])
    elif "base" in d or "train_data" in d:  # a training config that inherits its model
        section = {}
    else:
        section = dict(d)
    base = d.get("base")
    if base is None:
        return section
    base_path = _find(base, None if path is None else path.parent, config_dirs)
    if base_path in seen:
        raise ValueError(f"{base_path}: its 'base' chain loops back to itself")
    inherited = _model_section(_read(base_path), base_path, config_dirs, (*seen, base_path))
    if "preset" in section:  # a preset here replaces the inherited shape
        inherited = {}
    return {**inherited, **section}
