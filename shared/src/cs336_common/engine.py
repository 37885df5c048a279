"""Batched sampling for evaluation and RL rollouts: `Engine`, `SamplingParams`, `Completion`.

One ``Engine.generate`` call (nanochat's ``engine.py`` and vLLM's offline ``LLM.generate``
are the models):

1. Prefill: the prompts, left-padded to the longest, go through the model in ONE call that
   fills a KV cache (the model's ``attention_mask`` hides the padding; each row keeps its
   true positions).
2. Broadcast: each prompt's cache row is repeated ``num_samples`` times, so the samples of a
   prompt share its prefill.
3. Decode: one token per live row per step. A row finishes at EOS, at a stop string, after
   ``max_new_tokens`` or when its sequence fills the context.

On CPU each step is the model's forward with that cache; the host reads every sampled
token at once and finished rows leave the batch and the cache at once. On a CUDA GPU the
step has fixed shapes (`cs336_common.decode_step.StaticStep`: the prompts' cache is kept once per prompt, each
row's generated keys/values go to preallocated slots, a Triton kernel attends over both)
and is replayed as a CUDA graph; for a Llama-style model the step's norms, RoPE and SwiGLU
gate are fused Triton ops (`cs336_common.nn.decode_ops`); plain sampling is one fused kernel
(`cs336_common.fused_sampling`); the host reads the sampled tokens every `_CHECK_EVERY`
steps while the next step runs, and the batch shrinks once half of it has finished.
Inputs are checked once, at prefill: no decode step syncs with the host.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from cs336_common.decode_step import EagerStep, StaticStep
from cs336_common.fused_sampling import fused_sample, fused_sampling_available
from cs336_common.nn.functional import softmax

EOS_TOKEN = "<|endoftext|>"
_CHECK_EVERY = 8  # decode steps between the host's reads of sampled tokens, on a GPU


@dataclass
class SamplingParams:
    """How to sample. ``temperature`` 0 is greedy; ``top_k`` keeps the k most likely tokens
    and ``top_p`` < 1 the smallest set whose probability reaches top_p (both after the
    temperature). ``stop``: strings that end a completion (the text excludes them).
    ``num_samples`` completions per prompt share one prefill. ``seed`` makes a call
    reproducible (None: fresh randomness)."""

    max_new_tokens: int = 256
    temperature: float = 1.0  # 0 = greedy
    top_p: float = 1.0
    top_k: int | None = None
    stop: Sequence[str] = ()
    num_samples: int = 1
    seed: int | None = None

    def __post_init__(self):
        if isinstance(self.stop, str):
            self.stop = (self.stop,)
        self.stop = tuple(self.stop)
        if self.max_new_tokens < 0:
            raise ValueError(f"max_new_tokens must be >= 0, got {self.max_new_tokens}")
        if not self.temperature >= 0:
            raise ValueError(f"temperature must be >= 0 (0 = greedy), got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.top_k is not None and self.top_k < 1:
            raise ValueError(f"top_k must be >= 1 or None, got {self.top_k}")
        if self.num_samples < 1:
            raise ValueError(f"num_samples must be >= 1, got {self.num_samples}")
        if not all(isinstance(s, str) and s for s in self.stop):
            raise ValueError(f"stop must be non-empty strings, got {self.stop!r}")


@dataclass
class Completion:
    """One sampled continuation of prompt ``prompt_index``.

    ``ids``: every sampled token, including the EOS that ended it (finish_reason ``"eos"``)
    and the tokens that spelled a stop string (``"stop"``), so that ``ids`` and ``logprobs``
    are exactly what an RL step trains on. ``text``: the decoded completion without EOS and
    cut before the stop string ("" without a tokenizer). ``logprobs[i]``: log-probability of
    ``ids[i]`` under the model's own distribution, ``log_softmax(logits)`` at temperature 1
    with no top-k/top-p filtering, whatever the sampling parameters were.
    ``finish_reason``: ``"eos"``, ``"stop"`` or ``"length"`` (max_new_tokens or the context).
    """

    prompt_index: int
    ids: list[int]
    text: str
    logprobs: list[float]
    finish_reason: str


def sample_next(
    logits: Tensor,
    temperature: float,
    top_p: float,
    generator: torch.Generator | None = None,
    *,
    top_k: int | None = None,
) -> Tensor:
    """Draw one token per row. logits: (batch, vocab) -> int64 (batch,).

    ``temperature == 0`` is greedy (argmax); otherwise softmax(logits / temperature),
    restricted to the ``top_k`` most likely tokens and to the nucleus of mass ``top_p``,
    renormalized. Drawn as argmax(p / E) with E ~ Exp(1) (the exponential race), which has
    the law of p and needs no host sync."""
    if temperature == 0:
        return logits.argmax(dim=-1)
    if logits.element_size() < 4:  # 16-bit logits: sample from float32 probabilities
        logits = logits.float()
    if temperature != 1.0:  # x / 1.0 == x: skip a pass over (batch, vocab)
        logits = logits / temperature
    if top_k is not None and top_k < logits.shape[-1]:
        kth = logits.topk(top_k, dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    probs = softmax(logits, dim=-1)
    if top_p < 1.0:
        probs = _nucleus(probs, top_p)
    noise = torch.empty_like(probs).exponential_(generator=generator)
    # a zero draw would make 0/0 = NaN, which argmax prefers; the clamp keeps p=0 out
    return (probs / noise.clamp_(min=torch.finfo(noise.dtype).tiny)).argmax(dim=-1)


def _nucleus(probs: Tensor, top_p: float) -> Tensor:
    """Keep the smallest set of most likely tokens whose mass is >= top_p; renormalize.

    Sorted descending, a token is kept iff the mass of the tokens before it is still
    < top_p, so the most likely token always survives."""
    sorted_probs, order = probs.sort(dim=-1, descending=True)
    mass_before = sorted_probs.cumsum(dim=-1) - sorted_probs
    sorted_probs = sorted_probs.masked_fill(mass_before >= top_p, 0.0)
    kept = torch.zeros_like(probs).scatter(-1, order, sorted_probs)
    return kept / kept.sum(dim=-1, keepdim=True)


@dataclass
class _Row:
    """A completion being decoded: its tokens so far and when it must stop."""

    prompt_index: int
    budget: int  # max new tokens: max_new_tokens, or fewer where the context ends first
    ids: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)
    text_bytes: bytearray = field(default_factory=bytearray)
    stop_at: int | None = None  # byte offset of the stop string in text_bytes
    finish_reason: str | None = None

    def add(self, token: int, logprob: float, eos_id: int | None, stops, tokenizer) -> bool:
        """Append a sampled token; return whether the row goes on."""
        self.ids.append(token)
        self.logprobs.append(logprob)
        if token == eos_id:
            self.finish_reason = "eos"
        elif stops and self._hits_stop(stops, tokenizer):
            self.finish_reason = "stop"
        elif len(self.ids) >= self.budget:
            self.finish_reason = "length"
        return self.finish_reason is None

    def extend(self, tokens, logprobs, eos_id: int | None, stops, tokenizer) -> bool:
        """`add` each token until the row finishes (later ones are dropped)."""
        if not stops and eos_id not in tokens and len(self.ids) + len(tokens) < self.budget:
            self.ids += tokens  # what `add` would do, in one go
            self.logprobs += logprobs
            return True
        for t, lp in zip(tokens, logprobs, strict=True):
            if not self.add(t, lp, eos_id, stops, tokenizer):
                return False
        return True

    def _hits_stop(self, stops: list[bytes], tokenizer) -> bool:
        if hasattr(tokenizer, "decode_bytes"):  # ours: bytes per token, append the new ones
            start = len(self.text_bytes)
            self.text_bytes += tokenizer.decode_bytes(self.ids[-1:])
        else:  # other tokenizers (e.g. Hugging Face) decode the text as a whole
            start = 0
            self.text_bytes = bytearray(tokenizer.decode(self.ids).encode("utf-8"))
        # a match that is new ends in the new bytes: search from just before them
        found = [
            i for s in stops if (i := self.text_bytes.find(s, max(0, start - len(s) + 1))) >= 0
        ]
        self.stop_at = min(found, default=None)
        return self.stop_at is not None

    def completion(self, tokenizer, eos_id: int | None) -> Completion:
        text = ""
        if self.stop_at is not None:
            text = self.text_bytes[: self.stop_at].decode("utf-8", errors="replace")
        elif tokenizer is not None:
            text = tokenizer.decode([t for t in self.ids if t != eos_id])
        reason = self.finish_reason or "length"
        return Completion(self.prompt_index, self.ids, text, self.logprobs, reason)


def _default_eos_id(tokenizer) -> int | None:
    """Ours: its ``<|endoftext|>``; others: their ``eos_id`` / ``eos_token_id``."""
    if tokenizer is None:
        return None
    if EOS_TOKEN in (getattr(tokenizer, "special_tokens", None) or ()):
        return tokenizer.token_id(EOS_TOKEN)
    for name in ("eos_id", "eos_token_id"):
        if isinstance(eos := getattr(tokenizer, name, None), int):
            return eos
    return None


class Engine:
    """Samples completions of many prompts from a `TransformerLM` with one KV cache.

    ``tokenizer`` encodes string prompts (``encode``), decodes texts (``decode``) and
    matches stop strings: a `cs336_common.Tokenizer`, or anything with those two methods
    (a Hugging Face tokenizer); None for token-id prompts without stop strings.
    ``device``: where to run; the model is moved there (in place). ``eos_id``: the token
    that ends a completion; default the tokenizer's ``<|endoftext|>`` (ours) or its
    ``eos_id``/``eos_token_id`` attribute, else none (completions then end only at a stop
    string or a length). ``cuda_graphs``: replay each decode step as a CUDA graph (one
    launch instead of hundreds); default on for a `TransformerLM` on a CUDA device, off
    elsewhere (True on another device is an error). ``static_step``: decode with the
    fixed-shape step that graphs capture (default: where graphs are on; True without
    graphs runs it eagerly, on any device). ``fused_ops``: in that step, a Llama-style
    model's norms, RoPE and SwiGLU gate run as fused kernels (False: the model's forward).

    >>> engine = Engine(model, tokenizer)
    >>> outs = engine.generate(["Q: 2+2?", "Once"], SamplingParams(64, num_samples=8, seed=0))
    >>> outs[0][3].text, outs[0][3].logprobs, outs[0][3].finish_reason
    """

    def __init__(
        self,
        model: nn.Module,
        tokenizer=None,
        *,
        device=None,
        eos_id: int | None = None,
        cuda_graphs: bool | None = None,
        static_step: bool | None = None,
        fused_ops: bool = True,
    ):
        self.model = model if device is None else model.to(device)
        self.tokenizer = tokenizer
        self.eos_id = _default_eos_id(tokenizer) if eos_id is None else eos_id
        self.cuda_graphs, self.static_step, self.fused_ops = cuda_graphs, static_step, fused_ops

    @property
    def device(self) -> torch.device:
        return self.model.lm_head.weight.device

    def load_weights(self, state_dict_or_model: dict[str, Tensor] | nn.Module) -> None:
        """Copy new weights (e.g. the policy's after an RL step) into the engine's model.
        Keys of a ``torch.compile``d or DDP-wrapped model (``_orig_mod.``, ``module.``)
        are accepted; dtype and device are converted as ``load_state_dict`` does."""
        state = state_dict_or_model
        if isinstance(state, nn.Module):
            state = state.state_dict()
        self.model.load_state_dict({_unwrapped_key(k): v for k, v in state.items()})

    @torch.inference_mode()
    def generate(
        self, prompts: Sequence[str] | Sequence[Sequence[int]], params: SamplingParams
    ) -> list[list[Completion]]:
        """Sample ``params.num_samples`` completions of each prompt (a string, encoded with
        the tokenizer, or a list of token ids). Returns one list per prompt, in order. The
        model runs in eval mode (no dropout) and is put back in its mode afterwards."""
        ids = self._encode(prompts)
        if params.stop and self.tokenizer is None:
            raise ValueError("stop strings need a tokenizer to decode the completions")
        ctx = self.model.config.context_length
        rows = [
            _Row(i, min(params.max_new_tokens, ctx - len(p)))
            for i, p in enumerate(ids)
            for _ in range(params.num_samples)
        ]
        if rows and max(r.budget for r in rows) > 0:
            training = self.model.training
            self.model.eval()  # no dropout: sample from, and score under, the model itself
            try:
                self._decode(ids, rows, params)
            finally:
                self.model.train(training)
        out: list[list[Completion]] = [[] for _ in ids]
        for r in rows:
            out[r.prompt_index].append(r.completion(self.tokenizer, self.eos_id))
        return out

    def _encode(self, prompts) -> list[list[int]]:
        if isinstance(prompts, str):
            raise TypeError("prompts must be a list of strings or of token-id lists, not a str")
        ids = []
        for p in prompts:
            if isinstance(p, str):
                if self.tokenizer is None:
                    raise ValueError("string prompts need a tokenizer; pass token ids instead")
                p = self.tokenizer.encode(p)
            ids.append([int(t) for t in p])
        ctx = self.model.config.context_length
        for i, p in enumerate(ids):
            if not 0 < len(p) <= ctx:
                raise ValueError(
                    f"prompt {i} has {len(p)} tokens; it needs 1 to context_length={ctx}"
                )
        return ids

    def _prefill(self, ids: list[list[int]], extra_slots: int):
        """One padded forward over all prompts -> (KV cache, last logits (P, vocab)). The
        only forward that checks token ids (a sync); decode steps feed sampled ids."""
        longest = max(map(len, ids))
        tokens = torch.zeros(len(ids), longest, dtype=torch.long)
        mask = torch.zeros(len(ids), longest, dtype=torch.bool)
        for i, p in enumerate(ids):  # left padding: every prompt ends in the last slot
            tokens[i, longest - len(p) :] = torch.tensor(p)
            mask[i, longest - len(p) :] = True
        cache = self.model.new_kv_cache(len(ids), max_seq_len=longest + extra_slots)
        padded = not bool(mask.all())
        mask = mask.to(self.device) if padded else None
        logits = self.model(tokens.to(self.device), cache, attention_mask=mask)
        return cache, logits[:, -1]

    def _decode(self, ids: list[list[int]], rows: list[_Row], params: SamplingParams) -> None:
        device = self.device
        stops = [s.encode("utf-8") for s in params.stop]
        budget = max(r.budget for r in rows)
        mode = self._decode_mode()
        # the last sampled token is never fed back, hence budget - 1 more slots; the
        # static step keeps them apart from the prompts' cache
        cache, logits = self._prefill(ids, 0 if mode != "eager" else budget - 1)
        # each prompt's cache row serves its samples; rows with no budget never start
        batch = [i for i, r in enumerate(rows) if r.budget > 0]
        src = torch.tensor([rows[i].prompt_index for i in batch], device=device)
        positions = torch.tensor([len(ids[rows[i].prompt_index]) for i in batch], device=device)
        if len(batch) != len(ids) or params.num_samples > 1:
            logits = logits[src]
        if mode == "eager":
            if len(batch) != len(ids) or params.num_samples > 1:
                cache.select_rows(src)
            step = EagerStep(self.model, cache, positions)
        else:
            step = StaticStep(
                self.model, cache, src, positions, budget - 1, mode == "graphs", self.fused_ops
            )
        generator = torch.Generator(device=device)
        if params.seed is None:
            generator.seed()
        else:
            generator.manual_seed(params.seed)
        # eager on CPU, the host reads every step and finished rows leave at once;
        # otherwise every `_CHECK_EVERY` steps (a sync stalls the queue of kernels), and
        # the batch shrinks once half of it has finished (a new shape means a new graph)
        eager_host = device.type == "cpu" and mode == "eager"
        every = 1 if eager_host else _CHECK_EVERY
        pending: list[tuple[Tensor, Tensor]] = []
        for n in range(1, budget + 1):
            token, logprob = _sample(logits, params, generator)
            pending.append((token, logprob))
            if n % every and n < budget:
                logits = step(token)
                continue
            toks, lps = (torch.stack(x, 1) for x in zip(*pending, strict=True))
            pending.clear()
            if not eager_host:  # queue the next step before the host reads and waits
                toks, lps = toks.to("cpu", non_blocking=True), lps.to("cpu", non_blocking=True)
                copied = _event(device)
                if n < budget:
                    logits = step(token)
                if copied is not None:
                    copied.synchronize()
            toks, lps = toks.tolist(), lps.tolist()
            going = [
                j
                for j, i in enumerate(batch)
                if rows[i].finish_reason is None
                and rows[i].extend(toks[j], lps[j], self.eos_id, stops, self.tokenizer)
            ]
            if not going:
                return
            if len(going) < len(batch) and (eager_host or 2 * len(going) <= len(batch)):
                keep = torch.tensor(going, device=device)
                if eager_host:
                    token = token[keep]
                else:  # the step ran on the whole batch already
                    logits = logits[keep]
                step.select_rows(keep)
                batch = [batch[j] for j in going]
            if eager_host:
                logits = step(token)

    def _decode_mode(self) -> str:
        """``"graphs"`` (the static step in CUDA graphs), ``"static"`` (that step run
        eagerly) or ``"eager"`` (the model's forward and its growing cache)."""
        graphs = self.cuda_graphs
        if graphs is None:  # graphs capture the static step: off when that is turned off
            graphs = (
                self.device.type == "cuda"
                and hasattr(self.model, "masked_features")
                and self.static_step is not False
            )
        elif graphs and self.device.type != "cuda":
            raise ValueError(f"cuda_graphs=True needs a CUDA device; the model is on {self.device}")
        if graphs and self.static_step is False:
            raise ValueError("cuda_graphs=True needs the static step; static_step=False")
        if graphs:
            return "graphs"
        return "static" if self.static_step else "eager"


def _event(device: torch.device):
    """A CUDA event recorded now on the current stream (None elsewhere)."""
    if device.type != "cuda":
        return None
    event = torch.cuda.Event()
    event.record()
    return event


def _sample(logits: Tensor, params: SamplingParams, generator) -> tuple[Tensor, Tensor]:
    """-> (token, its log-probability under the unfiltered distribution), (batch,) each.
    On a GPU, plain sampling (no top-k, no top-p) is one fused kernel."""
    plain = params.temperature > 0 and params.top_k is None and params.top_p == 1.0
    if plain and fused_sampling_available(logits):
        return fused_sample(logits, params.temperature, generator)
    if logits.element_size() < 4:  # one float32 copy serves both
        logits = logits.float()
    token = sample_next(logits, params.temperature, params.top_p, generator, top_k=params.top_k)
    return token, torch.log_softmax(logits, -1).gather(-1, token[:, None]).squeeze(-1)


def _unwrapped_key(key: str) -> str:
    """``module._orig_mod.layers.0...`` -> ``layers.0...``: drop DDP/compile wrappers."""
    while key.startswith(("module.", "_orig_mod.")):
        key = key.split(".", 1)[1]
    return key
