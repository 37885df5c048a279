"""Our `TransformerLM` + `Tokenizer` <-> a Hugging Face ``LlamaForCausalLM`` directory.

The architectures match layer for layer (pre-norm RMSNorm, RoPE, SwiGLU, no biases),
except for RoPE's pairing: we rotate interleaved pairs ``(x[2i], x[2i+1])``, Llama's
``rotate_half`` rotates ``(x[i], x[i + d/2])``. Permuting the rows of each head's query
and key projections (even rows first, then odd) turns one into the other; attention
scores are dot products, so applying the same permutation to q and k changes nothing.
The tokenizer becomes a byte-level BPE ``tokenizer.json`` (GPT-2 pre-tokenizer).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch

_LAYER_MAP = {  # ours -> HF, inside layers.{i}
    "attn.q_proj.weight": "self_attn.q_proj.weight",
    "attn.k_proj.weight": "self_attn.k_proj.weight",
    "attn.v_proj.weight": "self_attn.v_proj.weight",
    "attn.output_proj.weight": "self_attn.o_proj.weight",
    "ln1.weight": "input_layernorm.weight",
    "ln2.weight": "post_attention_layernorm.weight",
    "ffn.w1.weight": "mlp.gate_proj.weight",
    "ffn.w3.weight": "mlp.up_proj.weight",
    "ffn.w2.weight": "mlp.down_proj.weight",
}
_TOP_MAP = {
    "token_embeddings.weight": "model.embed_tokens.weight",
    "ln_final.weight": "model.norm.weight",
    "lm_head.weight": "lm_head.weight",
}
_RMS_EPS = 1e-5  # cs336_common.nn.RMSNorm's default


def _rope_permutation(d_model: int, num_heads: int, inverse: bool = False) -> torch.Tensor:
    """Row order taking interleaved RoPE pairs to half-split ones, head by head."""
    d_head = d_model // num_heads
    within = torch.cat((torch.arange(0, d_head, 2), torch.arange(1, d_head, 2)))
    if inverse:
        within = torch.argsort(within)
    return torch.cat([h * d_head + within for h in range(num_heads)])


def llama_config(cfg) -> Any:
    """The ``LlamaConfig`` of a `ModelConfig`; refuses variants Llama cannot express."""
    from transformers import LlamaConfig

    unsupported = {
        "use_rmsnorm": (cfg.use_rmsnorm, True),
        "norm_position": (cfg.norm_position, "pre"),
        "use_rope": (cfg.use_rope, True),
        "ffn": (cfg.ffn, "swiglu"),
    }
    for name, (value, needed) in unsupported.items():
        if value != needed:
            raise ValueError(f"Llama has no equivalent of {name}={value!r} (needs {needed!r})")
    return LlamaConfig(
        vocab_size=cfg.vocab_size,
        hidden_size=cfg.d_model,
        intermediate_size=cfg.d_ff,
        num_hidden_layers=cfg.num_layers,
        num_attention_heads=cfg.num_heads,
        num_key_value_heads=cfg.num_heads,
        max_position_embeddings=cfg.context_length,
        rms_norm_eps=_RMS_EPS,
        rope_theta=cfg.rope_theta,
        tie_word_embeddings=cfg.tie_embeddings,
        hidden_act="silu",
        attention_bias=False,
        mlp_bias=False,
    )


def to_hf_state_dict(model) -> dict[str, torch.Tensor]:
    """Our state dict renamed to Llama's, with q/k rows permuted for ``rotate_half``."""
    cfg = model.config
    perm = _rope_permutation(cfg.d_model, cfg.num_heads)
    out = {}
    for key, value in model.state_dict().items():
        if key in _TOP_MAP:
            out[_TOP_MAP[key]] = value
            continue
        _, i, rest = key.split(".", 2)
        if rest in ("attn.q_proj.weight", "attn.k_proj.weight"):
            value = value[perm]
        out[f"model.layers.{i}.{_LAYER_MAP[rest]}"] = value
    return out


def to_hf_model(model):
    """A ``LlamaForCausalLM`` with our model's weights (same device and dtype)."""
    from transformers import LlamaForCausalLM

    w = model.lm_head.weight
    hf = LlamaForCausalLM(llama_config(model.config)).to(device=w.device, dtype=w.dtype)
    state = to_hf_state_dict(model)
    if model.config.tie_embeddings:
        state.pop("model.embed_tokens.weight")
    missing, unexpected = hf.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.endswith("embed_tokens.weight")]
    if missing or unexpected:
        raise RuntimeError(f"weight mapping is incomplete: missing {missing}, extra {unexpected}")
    return hf.eval()


def to_hf_tokenizer(tokenizer):
    """Our byte-level BPE `Tokenizer` as a ``PreTrainedTokenizerFast`` (same ids)."""
    from tokenizers import Tokenizer as HFTokenizer
    from tokenizers import decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    from cs336_common.gpt2_bytes import bytes_to_str

    specials = set(tokenizer.special_tokens)
    vocab = {
        bytes_to_str(b): i
        for i, b in tokenizer.vocab.items()
        if b.decode("utf-8", "replace") not in specials
    }
    merges = [(bytes_to_str(a), bytes_to_str(b)) for a, b in tokenizer.merges]
    core = HFTokenizer(models.BPE(vocab=vocab, merges=merges, fuse_unk=False))
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    core.decoder = decoders.ByteLevel()
    eos = next((t for t in tokenizer.special_tokens if "end" in t or t == "</s>"), None)
    fast = PreTrainedTokenizerFast(tokenizer_object=core, eos_token=eos, pad_token=eos)
    # added tokens take the next free id; add them in id order so they keep ours
    for tok in sorted(specials, key=tokenizer.token_id):
        fast.add_special_tokens({"additional_special_tokens": [tok]})
        if fast.convert_tokens_to_ids(tok) != tokenizer.token_id(tok):
            raise ValueError(f"special token {tok!r} cannot keep id {tokenizer.token_id(tok)}")
    return fast


def export_to_hf(model, tokenizer, out_dir: str | os.PathLike) -> Path:
    """Write ``out_dir`` loadable by ``AutoModelForCausalLM.from_pretrained`` and
    ``AutoTokenizer.from_pretrained`` (safetensors weights, float32 unless the model is
    in another dtype)."""
    out = Path(out_dir)
    to_hf_model(model).save_pretrained(out)
    if tokenizer is not None:
        to_hf_tokenizer(tokenizer).save_pretrained(out)
    return out


def from_hf_model(hf) -> Any:
    """Our `TransformerLM` from a ``LlamaForCausalLM`` (the inverse of `to_hf_model`)."""
    from cs336_common import TransformerLM

    c = hf.config
    if c.num_key_value_heads != c.num_attention_heads:
        raise ValueError("grouped-query attention (num_key_value_heads < heads) has no equivalent")
    if getattr(c, "attention_bias", False) or getattr(c, "mlp_bias", False):
        raise ValueError("projections with biases have no equivalent in TransformerLM")
    rope = getattr(c, "rope_parameters", None) or {}
    theta = rope.get("rope_theta", getattr(c, "rope_theta", 10000.0))
    if rope.get("rope_type", "default") != "default":
        raise ValueError(f"RoPE scaling {rope.get('rope_type')!r} has no equivalent")
    w = hf.lm_head.weight
    model = TransformerLM(
        c.vocab_size, c.max_position_embeddings, c.hidden_size, c.num_hidden_layers,
        c.num_attention_heads, c.intermediate_size, theta,
        tie_embeddings=bool(c.tie_word_embeddings), device=w.device, dtype=w.dtype,
    )  # fmt: skip
    inv = _rope_permutation(c.hidden_size, c.num_attention_heads, inverse=True)
    hf_state = hf.state_dict()
    state = {ours: hf_state[theirs] for ours, theirs in _TOP_MAP.items() if theirs in hf_state}
    for i in range(c.num_hidden_layers):
        for ours, theirs in _LAYER_MAP.items():
            value = hf_state[f"model.layers.{i}.{theirs}"]
            if ours in ("attn.q_proj.weight", "attn.k_proj.weight"):
                value = value[inv]
            state[f"layers.{i}.{ours}"] = value
    state.setdefault("token_embeddings.weight", state["lm_head.weight"])
    model.load_state_dict(state)
    return model.eval()


def from_hf_tokenizer_file(path: str | os.PathLike):
    """Our `Tokenizer` from a byte-level BPE ``tokenizer.json`` (as `to_hf_tokenizer` writes)."""
    from cs336_common import Tokenizer
    from cs336_common.gpt2_bytes import str_to_bytes

    state = json.loads(Path(path).read_text(encoding="utf-8"))
    bpe = state["model"]
    if bpe.get("type") != "BPE":
        raise ValueError(f"{path}: model type {bpe.get('type')!r}, expected byte-level BPE")
    vocab = {int(i): str_to_bytes(t, where=str(path)) for t, i in bpe["vocab"].items()}
    merges = [
        tuple(str_to_bytes(t, where=str(path)) for t in (m.split(" ") if isinstance(m, str) else m))
        for m in bpe["merges"]
    ]
    specials = [t["content"] for t in sorted(state.get("added_tokens", []), key=lambda t: t["id"])]
    for t in state.get("added_tokens", []):
        vocab[int(t["id"])] = t["content"].encode("utf-8")
    return Tokenizer(vocab, merges, specials)


def import_from_hf(directory: str | os.PathLike):
    """(`TransformerLM`, `Tokenizer` or None) from a ``LlamaForCausalLM`` directory."""
    from transformers import LlamaForCausalLM

    directory = Path(directory)
    model = from_hf_model(LlamaForCausalLM.from_pretrained(directory))
    tok_file = directory / "tokenizer.json"
    return model, from_hf_tokenizer_file(tok_file) if tok_file.is_file() else None
