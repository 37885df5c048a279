"""`TrainConfig`: everything one training run needs, as a dataclass that loads from TOML
or YAML files plus ``--set key=value`` overrides.

A config file may name a ``base`` config (a path relative to itself, or the name of a
shipped config) whose values it overrides, so an ablation is a few lines. A ``[sweep]``
table maps (dotted) keys to lists of values: the file then describes one run per
combination, each in ``out_dir/key=value``. Shipped configs live in
``cs336_basics/configs/`` and are addressed by name, e.g. ``tinystories`` or ``lr_sweep``.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import itertools
import json
import math
import tomllib
import types
import typing
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from cs336_common.errors import InputError
from cs336_common.nn import ModelConfig, load_model_config

_PRECISIONS = ("auto", "bf16", "fp32")
_DEVICES = ("auto", "cuda", "mps", "cpu")


@dataclass
class TrainConfig:
    """One training run. Exactly one of ``max_steps`` and ``total_tokens`` sets its length;
    a step consumes ``batch_size · grad_accum_steps · context_length`` tokens."""

    model: ModelConfig
    train_data: str  # token file from `cs336-basics tokenizer encode`
    val_data: str | None = None  # token file for validation (None: no validation)
    tokenizer: str | None = None  # its tokenizer folder, copied into the run for `generate`
    out_dir: str = "runs/run"  # the run directory
    batch_size: int = 32  # sequences per micro-batch
    grad_accum_steps: int = 1  # micro-batches per optimizer step
    max_steps: int | None = None
    total_tokens: int | None = None  # token budget; steps = budget / tokens per step
    # AdamW and the warmup + cosine schedule
    lr: float = 1e-3  # peak learning rate
    min_lr_ratio: float = 0.1  # the cosine ends at lr · min_lr_ratio
    warmup_steps: int = 100
    cosine_steps: int | None = None  # where the cosine ends (None: the last step)
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.95
    eps: float = 1e-8
    grad_clip: float = 1.0  # max global L2 norm of the gradients (0: no clipping)
    # cadence
    log_every: int = 10
    eval_every: int = 200
    eval_batches: int = 20  # the same batches every evaluation
    checkpoint_every: int = 1000
    keep_checkpoints: int = 0  # keep only the newest N periodic checkpoints (0: all)
    # hardware
    device: str = "auto"  # auto: cuda > mps > cpu
    precision: str = "auto"  # auto: bf16 autocast on CUDA, fp32 elsewhere
    compile: bool = False  # torch.compile the forward pass with the loss, and AdamW's update
    # with compile, on CUDA, one micro-batch per step: replay forward and backward as CUDA
    # graphs (torch.compile's mode="reduce-overhead"), one launch instead of hundreds;
    # otherwise ignored (with accumulation a replay would overwrite the earlier
    # micro-batches' gradients)
    cuda_graphs: bool = False
    # the LM head and the loss as one op (`cs336_common.train.fused_lm_loss`), never
    # materialising the logits for backward; the same loss up to rounding
    fused_loss: bool = False
    seed: int = 0
    # optional Weights & Biases logging (only when the package is installed)
    wandb: bool = False
    wandb_project: str = "cs336-basics"
    run_name: str | None = None

    def __post_init__(self):
        if isinstance(self.model, dict):
            self.model = _model_from_dict(self.model)
        _check_types(self)
        positive = ("batch_size", "grad_accum_steps", "log_every", "eval_every", "eval_batches")
        for name in (*positive, "checkpoint_every"):
            _check(name, getattr(self, name) >= 1, "must be >= 1")
        for name in ("lr", "weight_decay", "eps", "grad_clip", "warmup_steps"):
            _check(name, getattr(self, name) >= 0, "must be >= 0")
        _check("min_lr_ratio", 0 <= self.min_lr_ratio <= 1, "must lie in [0, 1]")
        _check("keep_checkpoints", self.keep_checkpoints >= 0, "must be >= 0")
        for name in ("beta1", "beta2"):
            _check(name, 0 <= getattr(self, name) < 1, "must lie in [0, 1)")
        _check("device", self.device in _DEVICES, f"must be one of {_DEVICES}")
        _check("precision", self.precision in _PRECISIONS, f"must be one of {_PRECISIONS}")
        _check(
            "max_steps",
            (self.max_steps is None) != (self.total_tokens is None),
            "set exactly one of max_steps and total_tokens",
        )
        _check("max_steps", self.num_steps >= 1, f"the run would have {self.num_steps} steps")

    @property
    def tokens_per_step(self) -> int:
        return self.batch_size * self.grad_accum_steps * self.model.context_length

    @property
    def min_lr(self) -> float:
        return self.lr * self.min_lr_ratio

    @property
    def num_steps(self) -> int:
        if self.max_steps is not None:
            return self.max_steps
        return self.total_tokens // self.tokens_per_step

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        if callable(self.model.attention_backend):
            # a kernel passed from Python is not serialisable; any backend computes the same
            # attention, so a reloaded model uses PyTorch's fused one
            d["model"]["attention_backend"] = "torch"
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        d = dict(d)
        _check_known(d, {f.name for f in dataclasses.fields(cls)}, "")
        for name in ("model", "train_data"):
            if name not in d:
                raise ValueError(f"TrainConfig.{name} is required")
        return cls(**d)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2) + "\n"

    @classmethod
    def from_json(cls, s: str) -> TrainConfig:
        return cls.from_dict(json.loads(s))


def load_train_config(source: str | Path, overrides: Sequence[str] = ()) -> TrainConfig:
    """Load a config file (TOML, JSON, or YAML when PyYAML is installed) or a shipped config by
    name, then apply ``key=value`` overrides (dotted keys reach into ``model``)."""
    configs = load_sweep(source, overrides)
    if len(configs) > 1:
        raise ValueError(f"{source} describes a sweep of {len(configs)} runs; use load_sweep")
    return configs[0]


def load_sweep(
    source: str | Path, overrides: Sequence[str] = (), sweep: Sequence[str] = ()
) -> list[TrainConfig]:
    """Every run of a config: one per combination of its ``[sweep]`` values and of the
    ``sweep`` items (``"lr=1e-4,3e-4"``), each in ``out_dir/key=value[,key=value]``;
    a config without a sweep gives one run."""
    d = _load_file(source)
    axes = {key: _as_list(key, values) for key, values in _flatten(d.pop("sweep", {}))}
    for item in sweep:
        key, raw = _split_override(item, "--sweep")
        axes[key] = [_parse_value(v) for v in raw.split(",")]
    if set(_RUN_LENGTH_PARTNER) <= set(axes):
        raise ValueError(f"{source}: sweep max_steps or total_tokens, not both")
    for item in overrides:
        key, value = _parse_override(item)
        _set_dotted(d, key, value)
        _drop_run_length_partner(d, key)
    configs = []
    for values in itertools.product(*axes.values()):
        point = copy.deepcopy(d)
        for key, value in zip(axes, values, strict=True):
            _set_dotted(point, key, value)
            _drop_run_length_partner(point, key)
        if axes:
            name = ",".join(f"{k}={_path_safe(k, v)}" for k, v in zip(axes, values, strict=True))
            point["out_dir"] = str(Path(point.get("out_dir", "runs/sweep")) / name)
        try:
            configs.append(TrainConfig.from_dict(point))
        except (ValueError, TypeError) as e:
            raise ValueError(f"{source}: {e}") from None
    return configs


# What a resumed run may change. The model and the data define what the checkpoints
# are; the schedule and the length may change only on request (and are recorded);
# anything else (logging cadence, device, precision, compile, ...) is free.
FIXED_ON_RESUME = (
    "model", "train_data", "val_data", "tokenizer", "batch_size", "grad_accum_steps", "seed",
    "eval_batches",
)  # fmt: skip
SCHEDULE = (
    "max_steps", "total_tokens", "lr", "min_lr_ratio", "warmup_steps", "cosine_steps",
    "weight_decay", "beta1", "beta2", "eps", "grad_clip",
)  # fmt: skip
# a model field that changes how attention is computed, not what the model is
_FREE_MODEL_FIELDS = ("attention_backend",)


def resume_changes(
    previous: dict[str, Any], config: TrainConfig, allow_schedule_change: bool = False
) -> dict[str, list]:
    """The settings ``config`` changes from a run's saved config.json, as
    ``{field: [old, new]}`` (model fields dotted). Raises `InputError` naming the fields
    when it changes the model or the data, or the schedule without
    ``allow_schedule_change``."""
    old = dict(_flatten(previous))
    new = dict(_flatten(config.to_dict()))
    changes = {
        k: [old.get(k), new.get(k)]
        for k in sorted(old.keys() | new.keys())
        if old.get(k) != new.get(k) and k.removeprefix("model.") not in _FREE_MODEL_FIELDS
    }
    fixed = [k for k in changes if k.split(".")[0] in FIXED_ON_RESUME]
    if fixed:
        raise InputError(
            f"resume: {_describe(changes, fixed)}; a resumed run keeps its model and data "
            "(start a new run for these)"
        )
    schedule = [k for k in changes if k in SCHEDULE]
    if schedule and not allow_schedule_change:
        raise InputError(
            f"resume: {_describe(changes, schedule)}; pass --allow-schedule-change to change "
            "the schedule or length of a run (recorded in its history.jsonl)"
        )
    return changes


def _describe(changes: dict[str, list], keys: list[str]) -> str:
    return ", ".join(f"{k} {changes[k][0]!r} -> {changes[k][1]!r}" for k in keys)


def _path_safe(key: str, value: Any) -> Any:
    """A sweep value becomes part of a run directory's name: it may not leave out_dir."""
    text = str(value)
    if "/" in text or "\\" in text or text in (".", "..") or "\0" in text:
        raise InputError(
            f"sweep {key}={text!r}: a swept value names a run directory, so it may not "
            "contain a path separator or be '.' or '..'"
        )
    return value


def shipped_configs() -> dict[str, Path]:
    """Name -> path of every config shipped with the package."""
    folder = resources.files("cs336_basics") / "configs"
    return {
        p.name.removesuffix(".toml"): Path(str(p))
        for p in folder.iterdir()
        if p.name.endswith(".toml")
    }


# ---- files ---------------------------------------------------------------------------


def _resolve(source: str | Path, relative_to: Path | None = None) -> Path:
    path = Path(source)
    if relative_to is not None and not path.is_absolute():
        candidate = relative_to / path
        if candidate.is_file():
            return candidate
    if path.is_file():
        return path
    shipped = shipped_configs()
    if str(source) in shipped:
        return shipped[str(source)]
    raise FileNotFoundError(
        f"config {source!r} is neither a file nor a shipped config ({', '.join(sorted(shipped))})"
    )


def _load_file(source: str | Path, relative_to: Path | None = None, seen=()) -> dict:
    path = _resolve(source, relative_to)
    if path in seen:
        raise ValueError(f"config {path}: its 'base' chain loops back to itself")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise ValueError(f"config {path}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    try:
        if path.suffix == ".json":  # a run directory's resolved config.json
            d = json.loads(text)
        elif path.suffix in (".yaml", ".yml"):
            d = _yaml_loads(text, path)
        else:
            d = tomllib.loads(text)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"config {path}: {e}") from None
    if not isinstance(d, dict):
        raise ValueError(f"config {path}: expected a table of settings at the top level")
    base = d.pop("base", None)
    if base is None:
        return d
    inherited = _load_file(base, path.parent, (*seen, path))
    for key in d:
        _drop_run_length_partner(inherited, key)
    return _merge(inherited, d)


def _yaml_loads(text: str, path: Path) -> Any:
    try:
        import yaml
    except ImportError:
        raise ValueError(
            f"config {path}: YAML configs need PyYAML (`pip install pyyaml`); or use TOML"
        ) from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ValueError(f"config {path}: {getattr(e, 'problem', None) or e}{where}") from None


# the two ways to set the run length: setting one (by --set, a sweep axis or a file over
# its base) replaces the other
_RUN_LENGTH_PARTNER = {"max_steps": "total_tokens", "total_tokens": "max_steps"}


def _drop_run_length_partner(d: dict, key: str) -> None:
    """After ``key`` was set in ``d``: if it is one of the run lengths, drop the other."""
    partner = _RUN_LENGTH_PARTNER.get(key)
    if partner is not None:
        d.pop(partner, None)


def _merge(base: dict, top: dict) -> dict:
    out = dict(base)
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


# ---- overrides -----------------------------------------------------------------------


def _parse_override(item: str) -> tuple[str, Any]:
    """``"model.d_model=256"`` -> ("model.d_model", 256)."""
    key, raw = _split_override(item, "--set")
    return key, _parse_value(raw)


def _split_override(item: str, flag: str) -> tuple[str, str]:
    key, sep, raw = item.partition("=")
    if not sep or not key.strip():
        raise ValueError(f"{flag} {item!r}: expected KEY=VALUE, e.g. {flag} lr=3e-4")
    return key.strip(), raw


def _parse_value(raw: str) -> Any:
    """A TOML literal (number, true/false, quoted string); anything else is a bare string."""
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        return raw


def _flatten(d: dict, prefix: str = "") -> list[tuple[str, Any]]:
    """``{"model": {"d_model": [..]}}`` -> ``[("model.d_model", [..])]``."""
    out = []
    for key, value in d.items():
        if isinstance(value, dict):
            out += _flatten(value, f"{prefix}{key}.")
        else:
            out.append((f"{prefix}{key}", value))
    return out


def _as_list(key: str, values: Any) -> list:
    if not isinstance(values, list) or not values:
        raise ValueError(f"sweep.{key} must be a non-empty list of values, got {values!r}")
    return values


def _set_dotted(d: dict, key: str, value: Any) -> None:
    *parents, last = key.split(".")
    for part in parents:
        d = d.setdefault(part, {})
        if not isinstance(d, dict):
            raise ValueError(f"--set {key}: {part!r} is not a section")
    d[last] = value


# ---- checks --------------------------------------------------------------------------


def _model_from_dict(d: dict) -> ModelConfig:
    d = dict(d)
    _check_known(d, {f.name for f in dataclasses.fields(ModelConfig)} | {"preset"}, "model.")
    return load_model_config(d)


def _check_known(d: dict, known: set[str], prefix: str) -> None:
    for key in d:
        if key not in known:
            close = difflib.get_close_matches(key, known, n=1)
            hint = f"; did you mean {prefix}{close[0]}?" if close else ""
            raise ValueError(f"unknown setting {prefix}{key}{hint}")


def _check(name: str, ok: bool, message: str) -> None:
    if not ok:
        raise ValueError(f"TrainConfig.{name} {message}")


def _check_types(cfg: TrainConfig) -> None:
    """Check every field against its annotation; ints are accepted where floats are due."""
    hints = typing.get_type_hints(TrainConfig)
    for f in dataclasses.fields(cfg):
        if f.name == "model":
            continue
        value, hint = getattr(cfg, f.name), hints[f.name]
        allowed = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
        if value is None and type(None) in allowed:
            continue
        if float in allowed and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
            setattr(cfg, f.name, value)
        if not any(_is(value, t) for t in allowed if t is not type(None)):
            names = " or ".join(getattr(t, "__name__", str(t)) for t in allowed)
            raise ValueError(f"TrainConfig.{f.name} must be {names}, got {value!r}")
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"TrainConfig.{f.name} must be finite, got {value!r}")


def _is(value: Any, t: type) -> bool:
    if t is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, t)
