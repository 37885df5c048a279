"""The decoder-only Transformer LM: `TransformerBlock` and `TransformerLM`.

State-dict keys match the course's reference implementation: ``token_embeddings.weight``,
``layers.{i}.attn.{q,k,v,output}_proj.weight``, ``layers.{i}.ln1.weight``,
``layers.{i}.ffn.{w1,w2,w3}.weight``, ``layers.{i}.ln2.weight``, ``ln_final.weight``,
``lm_head.weight``.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from cs336_common.nn.attention import AttentionFn, MultiHeadSelfAttention
from cs336_common.nn.config import ModelConfig
from cs336_common.nn.kv_cache import KVCache
from cs336_common.nn.layers import (
    Embedding,
    GeLUFeedForward,
    LayerNorm,
    Linear,
    RMSNorm,
    SiLUFeedForward,
    SwiGLU,
)
from cs336_common.nn.rope import RotaryPositionalEmbedding


class TransformerBlock(nn.Module):
    """Pre-norm block: ``x + attn(ln1(x))``, then ``x + ffn(ln2(x))``.

    x: (..., seq, d_model) -> same. ``norm_position="post"`` gives ``ln1(x + attn(x))``,
    ``ln2(x + ffn(x))``; ``use_rmsnorm=False`` drops both norms; ``use_rope=False`` is
    NoPE; ``ffn="silu"`` uses an ungated SiLU feed-forward of width ``3·d_ff/2`` (same
    parameter count), ``ffn="gelu"`` GPT-2's GeLU MLP of width ``d_ff``;
    ``norm_type="layernorm"`` uses LayerNorm; ``dropout`` applies to each residual
    branch. ``rope`` shares one precomputed RoPE table between blocks.
    """

    def __init__(
        self,
        d_model: int,
        num_heads: int,
        d_ff: int,
        max_seq_len: int,
        rope_theta: float,
        *,
        use_rmsnorm: bool = True,
        norm_position: str = "pre",
        use_rope: bool = True,
        ffn: str = "swiglu",
        attention_backend: str | AttentionFn = "naive",
        rope: RotaryPositionalEmbedding | None = None,
        norm_type: str = "rmsnorm",
        dropout: float = 0.0,
        device=None,
        dtype=None,
    ):
        super().__init__()
        if norm_position not in ("pre", "post"):
            raise ValueError(f"norm_position must be 'pre' or 'post', got {norm_position!r}")
        if ffn not in ("swiglu", "silu", "gelu"):
            raise ValueError(f"ffn must be 'swiglu', 'silu' or 'gelu', got {ffn!r}")
        if use_rope and rope is None:
            rope = RotaryPositionalEmbedding(
                rope_theta, d_model // num_heads, max_seq_len, device=device
            )
        self.post_norm = norm_position == "post"
        self.attn = MultiHeadSelfAttention(
            d_model,
            num_heads,
            rope=rope if use_rope else None,
            attention_backend=attention_backend,
            device=device,
            dtype=dtype,
        )
        self.ln1 = _norm(use_rmsnorm, norm_type, d_model, device, dtype)
        if ffn == "swiglu":
            self.ffn = SwiGLU(d_model, d_ff, device=device, dtype=dtype)
        elif ffn == "gelu":
            self.ffn = GeLUFeedForward(d_model, d_ff, device=device, dtype=dtype)
        else:
            self.ffn = SiLUFeedForward(d_model, 3 * d_ff // 2, device=device, dtype=dtype)
        self.ln2 = _norm(use_rmsnorm, norm_type, d_model, device, dtype)
        # no module at all without dropout: existing models keep their exact graph
        self.drop = nn.Dropout(dropout) if dropout else nn.Identity()

    def forward(
        self,
        x: Tensor,
        token_positions: Tensor | None = None,
        *,
        kv_cache: KVCache | None = None,
        layer_idx: int = 0,
        attn_mask: Tensor | None = None,
    ) -> Tensor:
        def attn(h: Tensor) -> Tensor:
            return self.attn(
                h, token_positions, kv_cache=kv_cache, layer_idx=layer_idx, attn_mask=attn_mask
            )

        if self.post_norm:
            x = self.ln1(x + self.drop(attn(x)))
            return self.ln2(x + self.drop(self.ffn(x)))
        x = x + self.drop(attn(self.ln1(x)))
        return x + self.drop(self.ffn(self.ln2(x)))


def _norm(enabled: bool, norm_type: str, d_model: int, device, dtype) -> nn.Module:
    if not enabled:
        return nn.Identity()
    if norm_type not in ("rmsnorm", "layernorm"):
        raise ValueError(f"norm_type must be 'rmsnorm' or 'layernorm', got {norm_type!r}")
    cls = LayerNorm if norm_type == "layernorm" else RMSNorm
    return cls(d_model, device=device, dtype=dtype)


class TransformerLM(nn.Module):
    """Decoder-only Transformer LM. ``model(ids)``: int (batch, seq) -> logits (batch, seq, vocab).

    Every constructor argument lives in ``model.config`` (a `ModelConfig`); see it for
    the ablation flags. ``attention_backend``: ``"naive"``, ``"torch"``, ``"flash"`` (our
    Triton FlashAttention-2) or a callable ``fn(q, k, v, is_causal)`` on (batch, heads,
    seq, d_head).
    """

    def __init__(
        self,
        vocab_size: int,
        context_length: int,
        d_model: int,
        num_layers: int,
        num_heads: int,
        d_ff: int | None = None,
        rope_theta: float = 10000.0,
        *,
        use_rmsnorm: bool = True,
        norm_position: str = "pre",
        use_rope: bool = True,
        ffn: str = "swiglu",
        tie_embeddings: bool = False,
        attention_backend: str | AttentionFn = "naive",
        norm_type: str = "rmsnorm",
        absolute_positions: bool = False,
        dropout: float = 0.0,
        device=None,
        dtype=None,
    ):
        super().__init__()
        cfg = ModelConfig(
            vocab_size=vocab_size,
            context_length=context_length,
            d_model=d_model,
            num_layers=num_layers,
            num_heads=num_heads,
            d_ff=d_ff,
            rope_theta=rope_theta,
            use_rmsnorm=use_rmsnorm,
            norm_position=norm_position,
            use_rope=use_rope,
            ffn=ffn,
            tie_embeddings=tie_embeddings,
            attention_backend=attention_backend,
            norm_type=norm_type,
            absolute_positions=absolute_positions,
            dropout=dropout,
        )
        self.config = cfg
        kw = dict(device=device, dtype=dtype)
        self.token_embeddings = Embedding(vocab_size, d_model, **kw)
        if absolute_positions:
            self.position_embeddings = Embedding(context_length, d_model, **kw)
        self.embed_drop = nn.Dropout(dropout) if dropout else nn.Identity()
        rope = (
            RotaryPositionalEmbedding(rope_theta, cfg.d_head, context_length, device=device)
            if use_rope
            else None
        )
        self.layers = nn.ModuleList(
            TransformerBlock(
                d_model,
                num_heads,
                cfg.d_ff,
                context_length,
                rope_theta,
                use_rmsnorm=use_rmsnorm,
                norm_position=norm_position,
                use_rope=use_rope,
                ffn=ffn,
                attention_backend=attention_backend,
                rope=rope,
                norm_type=norm_type,
                dropout=dropout,
                **kw,
            )
            for _ in range(num_layers)
        )
        # post-norm blocks already end in a norm, so only pre-norm needs a final one
        final_norm = use_rmsnorm and norm_position == "pre"
        self.ln_final = _norm(final_norm, norm_type, d_model, device, dtype)
        self.lm_head = Linear(d_model, vocab_size, **kw)
        if tie_embeddings:
            # one tensor for both; it keeps the LM head's small init, since N(0, 1)
            # output weights would start with logits of std ~sqrt(d_model)
            self.token_embeddings.weight = self.lm_head.weight

    @classmethod
    def from_config(cls, config: ModelConfig, device=None, dtype=None) -> TransformerLM:
        return cls(**config.to_dict(), device=device, dtype=dtype)

    def new_kv_cache(
        self, batch_size: int, device=None, dtype=None, max_seq_len: int | None = None
    ) -> KVCache:
        """An empty cache for ``batch_size`` sequences of up to ``max_seq_len`` slots
        (default ``context_length``), on the model's device and in its dtype unless given.
        Left-padded rows may need more slots than ``context_length``."""
        w = self.lm_head.weight
        cfg = self.config
        return KVCache(
            cfg.num_layers,
            batch_size,
            cfg.num_heads,
            cfg.context_length if max_seq_len is None else max_seq_len,
            cfg.d_head,
            device=w.device if device is None else device,
            dtype=w.dtype if dtype is None else dtype,
        )

    def forward(
        self,
        in_indices: Tensor,
        kv_cache: KVCache | None = None,
        *,
        token_positions: Tensor | None = None,
        attention_mask: Tensor | None = None,
        validate: bool = True,
    ) -> Tensor:
        """in_indices: int (batch, seq) -> logits (batch, seq, vocab_size).

        With ``kv_cache``, ``in_indices`` are slots ``kv_cache.length ...``: prefill
        with the prompt, then feed one token per call; the cache grows by ``seq``.

        Batches of different lengths: ``attention_mask``, bool (batch, seq), is False at
        padding, which goes before each row's tokens (left padding). No position attends
        to padding (a padded position sees only itself; its logits are meaningless). A
        cache remembers the mask, so later calls need none for their (real) tokens.
        ``token_positions``, int (batch, seq), are the RoPE (or absolute) positions; by default each
        token's position is the number of real tokens before it in its row, so a padded
        row gives the logits it gives alone. Without either, nothing changes.

        ``validate=False`` skips the checks that read ids and positions back to the host
        (a device sync per call): for callers that checked them once already, such as
        the engine's decode steps. Shapes are still checked.
        """
        x = self.features(
            in_indices,
            kv_cache,
            token_positions=token_positions,
            attention_mask=attention_mask,
            validate=validate,
        )
        return self.lm_head(x)

    def features(
        self,
        in_indices: Tensor,
        kv_cache: KVCache | None = None,
        *,
        token_positions: Tensor | None = None,
        attention_mask: Tensor | None = None,
        validate: bool = True,
    ) -> Tensor:
        """The LM head's input, (batch, seq, d_model): ``forward`` without the head.
        Training through ``linear_cross_entropy(model.features(x), model.lm_head.weight,
        y)`` (`cs336_common.train`) never materialises the logits."""
        self._check_input(in_indices, kv_cache, token_positions, validate)
        seq = in_indices.shape[1]
        key_mask = attention_mask if kv_cache is None else kv_cache.write_mask(attention_mask, seq)
        attn_mask = None
        if key_mask is not None:
            if token_positions is None:
                before = 0 if kv_cache is None else kv_cache.real_lengths()[:, None]
                new = key_mask[:, key_mask.shape[1] - seq :]
                token_positions = (before + new.cumsum(-1) - 1).clamp(min=0)
            attn_mask = _padded_causal_mask(key_mask, seq)
        return self.masked_features(in_indices, token_positions, attn_mask, kv_cache)

    def masked_features(
        self,
        in_indices: Tensor,
        token_positions: Tensor | None,
        attn_mask: Tensor | None,
        kv_cache=None,
    ) -> Tensor:
        """``features`` once the positions and the attention mask (bool, broadcastable
        to (batch, 1, seq, keys), True = may attend) are known: no checks and no host
        syncs, so that a decode step of fixed shapes can be captured in a CUDA graph.
        ``kv_cache``: a `KVCache`, or any object with its ``update(layer, k, v)`` and
        ``advance(n)``; one that also has ``attend(layer, q)`` computes the attention
        itself (the engine's decode step, with ``attn_mask`` None)."""
        x = self.embed_drop(self._embed(in_indices, kv_cache, token_positions))
        for i, layer in enumerate(self.layers):
            x = layer(x, token_positions, kv_cache=kv_cache, layer_idx=i, attn_mask=attn_mask)
        if kv_cache is not None:
            kv_cache.advance(in_indices.shape[1])
        return self.ln_final(x)

    def _embed(self, ids: Tensor, kv_cache: KVCache | None, positions: Tensor | None) -> Tensor:
        x = self.token_embeddings(ids)
        if self.config.absolute_positions:
            if positions is None:
                start = 0 if kv_cache is None else kv_cache.length
                x = x + self.position_embeddings.weight[start : start + ids.shape[1]]
            else:
                x = x + self.position_embeddings(positions)
        return x

    def _check_input(
        self, ids: Tensor, kv_cache: KVCache | None, positions: Tensor | None, values: bool
    ) -> None:
        """Shapes always; with ``values``, also the ranges of ids and positions (a sync)."""
        cfg = self.config
        # the range checks need the values on the host, so compiled graphs skip them
        values = values and not torch.compiler.is_compiling()
        if ids.ndim != 2 or ids.dtype.is_floating_point or ids.dtype == torch.bool:
            raise ValueError(
                f"in_indices must be an integer tensor of shape (batch, seq); "
                f"got {ids.dtype} of shape {tuple(ids.shape)}"
            )
        start = 0 if kv_cache is None else kv_cache.length
        if positions is not None:
            # padded rows may use more cache slots than positions: the positions must fit
            last = -1
            if values and positions.numel():
                last = int(positions.max())
            if last >= cfg.context_length:
                raise ValueError(
                    f"token position {last} is beyond the model's context_length "
                    f"{cfg.context_length}"
                )
        elif start + ids.shape[1] > cfg.context_length:
            where = f" after {start} cached positions" if start else ""
            raise ValueError(
                f"sequence of {ids.shape[1]} tokens{where} is longer than the model's "
                f"context_length {cfg.context_length}"
            )
        if kv_cache is not None and kv_cache.batch_size != ids.shape[0]:
            raise ValueError(
                f"batch of {ids.shape[0]} sequences does not match the KV cache's "
                f"batch_size {kv_cache.batch_size}"
            )
        if values and ids.numel():
            lo, hi = torch.aminmax(ids)
            lo, hi = int(lo), int(hi)
            if lo < 0 or hi >= cfg.vocab_size:
                raise ValueError(
                    f"token ids must be in [0, {cfg.vocab_size - 1}] (vocab_size "
                    f"{cfg.vocab_size}); got ids in [{lo}, {hi}]"
                )


def _padded_causal_mask(key_mask: Tensor, seq: int) -> Tensor:
    """key_mask: bool (batch, keys), True = real token -> bool (batch, 1, seq, keys) for
    the last ``seq`` of the ``keys`` slots: causal, padding hidden, and each query always
    sees itself (so a padded query's softmax has a key and stays finite)."""
    n = key_mask.shape[1]
    q = torch.arange(n - seq, n, device=key_mask.device)[:, None]
    k = torch.arange(n, device=key_mask.device)[None, :]
    return ((k <= q) & key_mask[:, None, :] | (k == q))[:, None]
