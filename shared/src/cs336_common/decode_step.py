"""The engine's decode steps: one token per live row through the model.

`EagerStep` runs the model's forward with its growing KV cache (CPU, and any model).
`StaticStep` has fixed shapes so that a CUDA graph can capture it: the prompts' cache is
kept once per prompt, each row's generated keys/values go to preallocated slots, and a
Triton kernel (`decode_attention`) attends over both; for a Llama-style model the norms,
RoPE and SwiGLU gate are fused ops (`cs336_common.nn.decode_ops`)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from cs336_common.nn.config import ModelConfig
from cs336_common.nn.decode_attention import decode_attention
from cs336_common.nn.decode_ops import add_rms_norm, rope_write_kv, silu_mul
from cs336_common.nn.kv_cache import KVCache


class EagerStep:
    """One decode step through the model's forward, with its growing KV cache."""

    def __init__(self, model: nn.Module, cache: KVCache, positions: Tensor):
        self.model, self.cache, self.positions = model, cache, positions
        self.last_position = model.config.context_length - 1

    def __call__(self, token: Tensor) -> Tensor:
        """token: int64 (batch,), the last sampled ids -> next logits (batch, vocab)."""
        pos = self.positions[:, None]
        logits = self.model(token[:, None], self.cache, token_positions=pos, validate=False)
        # rows that finished but wait for the batch to shrink keep a valid position
        self.positions.add_(1).clamp_(max=self.last_position)
        return logits[:, -1]

    def select_rows(self, keep: Tensor) -> None:
        self.cache.select_rows(keep)
        self.positions = self.positions[keep]


class StaticStep:
    """A decode step of fixed shapes: it reads and writes the same buffers every time,
    so with ``graphs`` it is captured once per batch size in a CUDA graph and replayed,
    one launch instead of hundreds.

    The prompts' keys/values stay in the prefill cache, once per prompt (row i reads
    prompt ``prompt_of[i]``); each row's generated ones go to ``gen_slots`` slots of its
    own, written at ``slot`` (a device tensor, so replays move on); `decode_attention`
    reads the prompt's real slots and the row's slots up to ``slot``."""

    def __init__(
        self,
        model: nn.Module,
        prompts: KVCache,
        prompt_of: Tensor,
        positions: Tensor,
        gen_slots: int,
        graphs: bool,
        fused: bool = True,
    ):
        self.model, self.graphs = model, graphs
        self.last_position = model.config.context_length - 1
        self.prompt_k, self.prompt_v = prompts.keys, prompts.values
        P, used = prompts.batch_size, prompts.length
        self.prompt_mask = (
            torch.ones(P, used, dtype=torch.bool, device=positions.device)
            if prompts.key_mask is None
            else prompts.key_mask[:, :used]
        )
        L, _, H, _, D = prompts.keys.shape
        shape = (L, len(prompt_of), H, max(gen_slots, 1), D)
        self.gen_k = prompts.keys.new_zeros(shape)
        self.gen_v = prompts.keys.new_zeros(shape)
        self.prompt_of, self.positions = prompt_of, positions.clone()
        self.slot = torch.zeros(1, dtype=torch.long, device=positions.device)
        self.token = torch.zeros_like(self.positions)
        self.graph: torch.cuda.CUDAGraph | None = None
        self.logits: Tensor | None = None
        # the Llama-style block's step runs fused ops over weights stacked once per call
        # (the weights cannot change during a call; the next call stacks them again)
        self.stacked = stacked_weights(model) if fused and fusable(model) else None

    def update(self, layer: int, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        """The KV-cache interface of the attention layers: write the new token at the slot."""
        self.gen_k[layer].index_copy_(2, self.slot, k)
        self.gen_v[layer].index_copy_(2, self.slot, v)
        return self.gen_k[layer], self.gen_v[layer]

    def attend(self, layer: int, q: Tensor) -> Tensor:
        return decode_attention(
            q,
            self.prompt_k[layer],
            self.prompt_v[layer],
            self.prompt_mask,
            self.prompt_of,
            self.gen_k[layer],
            self.gen_v[layer],
            self.slot,
        )

    def advance(self, n: int) -> None:
        self.slot.add_(n)

    def _forward(self) -> Tensor:
        if self.stacked is not None:
            logits = self.model.lm_head(self._fused_features())
        else:
            x = self.model.masked_features(self.token[:, None], self.positions[:, None], None, self)
            logits = self.model.lm_head(x)[:, -1]
        self.positions.add_(1).clamp_(max=self.last_position)
        return logits

    def _fused_features(self) -> Tensor:
        """`TransformerLM.masked_features` of a pre-norm RMSNorm/RoPE/SwiGLU model for one
        token per row, (batch, d_model), in about nine kernels per layer: the residual
        add rides in the next norm, RoPE writes the cache, SwiGLU's gate is one kernel."""
        model, batch = self.model, len(self.token)
        x, residual = model.token_embeddings(self.token), None
        for i, (layer, (w_qkv, w13)) in enumerate(zip(model.layers, self.stacked, strict=True)):
            h, residual = add_rms_norm(x, residual, layer.ln1)
            q = rope_write_kv(
                h @ w_qkv.t(), self.positions, layer.attn.rope, self.gen_k[i], self.gen_v[i],
                self.slot,
            )  # fmt: skip
            x = layer.attn.output_proj(self.attend(i, q).reshape(batch, -1))
            h, residual = add_rms_norm(x, residual, layer.ln2)
            x = layer.ffn.w2(silu_mul(h @ w13.t()))
        self.advance(1)
        return add_rms_norm(x, residual, model.ln_final)[0]

    def __call__(self, token: Tensor) -> Tensor:
        self.token.copy_(token)
        if not self.graphs:
            return self._forward()
        if self.graph is not None:
            self.graph.replay()
            return self.logits
        # a new batch size: this step runs eagerly on a side stream (which also warms up
        # the kernels, as capture wants), then the next ones are captured for replay
        device = self.token.device
        side = torch.cuda.Stream(device)
        side.wait_stream(torch.cuda.current_stream(device))
        with torch.cuda.stream(side):
            logits = self._forward()
        torch.cuda.current_stream(device).wait_stream(side)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):  # records without running
            self.logits = self._forward()
        return logits

    def select_rows(self, keep: Tensor) -> None:
        """Keep batch rows ``keep``: new (smaller) buffers, so a new graph."""
        self.gen_k, self.gen_v = self.gen_k[:, keep], self.gen_v[:, keep]
        self.prompt_of, self.positions = self.prompt_of[keep], self.positions[keep]
        self.token = self.token[keep]
        if self.graph is not None:  # no replay may be in flight when the graph goes
            torch.cuda.current_stream(self.token.device).synchronize()
        self.graph = self.logits = None


def fusable(model: nn.Module) -> bool:
    """Whether `StaticStep` can run its fused step: our model with pre-norm RMSNorm,
    RoPE and SwiGLU (the Llama-style default); other variants run the model's forward."""
    cfg = getattr(model, "config", None)
    return (
        isinstance(cfg, ModelConfig)
        and isinstance(getattr(model, "layers", None), nn.ModuleList)
        and cfg.use_rmsnorm
        and cfg.norm_type == "rmsnorm"
        and cfg.norm_position == "pre"
        and cfg.use_rope
        and cfg.ffn == "swiglu"
        and not cfg.absolute_positions
    )


def stacked_weights(model: nn.Module) -> list[tuple[Tensor, Tensor]]:
    """Per layer: q/k/v weights stacked (one GEMM), and SwiGLU's w1/w3."""
    return [
        (
            torch.cat((b.attn.q_proj.weight, b.attn.k_proj.weight, b.attn.v_proj.weight)),
            torch.cat((b.ffn.w1.weight, b.ffn.w3.weight)),
        )
        for b in model.layers
    ]
