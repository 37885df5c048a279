"""TransformerBlock / TransformerLM: exact state-dict names, agreement with an independent
reference LM, the attention backends, the KV cache, the ablation variants and errors."""

import pytest
import torch
import torch.nn.functional as F

from cs336_common import ModelConfig, TransformerBlock, TransformerLM

from ._nn_reference import ReferenceLM, attention_reference

TINY = dict(vocab_size=97, context_length=48, d_model=48, num_layers=3, num_heads=4, d_ff=80)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def _model(**overrides):
    return TransformerLM(**{**TINY, "rope_theta": 10000.0, **overrides})


def test_state_dict_keys_are_the_reference_ones():
    keys = list(_model().state_dict())
    expected = ["token_embeddings.weight"]
    for i in range(TINY["num_layers"]):
        expected += [f"layers.{i}.attn.{p}_proj.weight" for p in ("q", "k", "v", "output")]
        expected += [f"layers.{i}.ln1.weight"]
        expected += [f"layers.{i}.ffn.{w}.weight" for w in ("w1", "w2", "w3")]
        expected += [f"layers.{i}.ln2.weight"]
    expected += ["ln_final.weight", "lm_head.weight"]
    assert keys == expected


@pytest.mark.parametrize(
    "shape",
    [
        dict(vocab_size=97, d_model=48, num_layers=3, num_heads=4, d_ff=80),
        dict(vocab_size=50, d_model=36, num_layers=2, num_heads=3, d_ff=64),
    ],
)
@pytest.mark.parametrize(("batch", "seq"), [(2, 17), (1, 32)])
def test_model_matches_independent_reference(shape, batch, seq):
    model = TransformerLM(context_length=32, rope_theta=10000.0, **shape)
    ref = ReferenceLM(rope_theta=10000.0, **shape)
    ref.load_state_dict(model.state_dict())
    ids = torch.randint(0, shape["vocab_size"], (batch, seq))
    logits = model(ids)
    torch.testing.assert_close(logits, ref(ids), rtol=1e-5, atol=1e-5)
    # gradients too: autograd through our ops equals autograd through PyTorch's
    target = torch.randn_like(logits)
    (logits * target).sum().backward()
    (ref(ids) * target).sum().backward()
    grads = dict(ref.named_parameters())
    for name, p in model.named_parameters():
        torch.testing.assert_close(p.grad, grads[name].grad, rtol=1e-4, atol=1e-5, msg=name)


def test_block_matches_reference():
    block = TransformerBlock(36, 3, 64, max_seq_len=32, rope_theta=500.0)
    assert set(block.state_dict()) == {
        *(f"attn.{p}_proj.weight" for p in ("q", "k", "v", "output")),
        "ln1.weight",
        "ln2.weight",
        *(f"ffn.{w}.weight" for w in ("w1", "w2", "w3")),
    }
    for p in block.parameters():  # non-trivial gains
        p.data.add_(0.1 * torch.randn_like(p))
    x = torch.randn(2, 3, 11, 36)
    ln = lambda m, t: F.rms_norm(t, (36,), m.weight, eps=1e-5)  # noqa: E731
    h = x + attention_reference(block.attn, ln(block.ln1, x), torch.arange(11), 3, 500.0)
    f = block.ffn
    y = h + F.linear(
        F.silu(F.linear(ln(block.ln2, h), f.w1.weight)) * F.linear(ln(block.ln2, h), f.w3.weight),
        f.w2.weight,
    )
    torch.testing.assert_close(block(x), y, rtol=1e-6, atol=1e-6)


def test_attention_backends_agree():
    naive = _model()
    fused = _model(attention_backend="torch")
    fused.load_state_dict(naive.state_dict())
    custom = _model(
        attention_backend=lambda q, k, v, c: F.scaled_dot_product_attention(q, k, v, is_causal=c)
    )
    custom.load_state_dict(naive.state_dict())
    ids = torch.randint(0, TINY["vocab_size"], (3, 29))
    torch.testing.assert_close(fused(ids), naive(ids), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(custom(ids), naive(ids), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("backend", ["naive", "torch"])
@pytest.mark.parametrize("variant", [{}, {"use_rope": False}, {"norm_position": "post"}])
def test_kv_cache_decoding_equals_full_forward(backend, variant):
    model = _model(attention_backend=backend, **variant)
    ids = torch.randint(0, TINY["vocab_size"], (2, 20))
    full = model(ids)
    cache = model.new_kv_cache(2)
    assert cache.length == 0 and cache.keys.dtype == torch.float32
    steps = [model(ids[:, :7], kv_cache=cache)]  # prefill
    assert cache.length == 7
    for t in range(7, 12):  # one token per call
        steps.append(model(ids[:, t : t + 1], kv_cache=cache))
    steps.append(model(ids[:, 12:], kv_cache=cache))  # a chunk after a non-empty cache
    assert cache.length == 20
    torch.testing.assert_close(torch.cat(steps, dim=1), full, rtol=1e-5, atol=1e-5)
    cache.reset()
    torch.testing.assert_close(model(ids[:, :3], kv_cache=cache), full[:, :3], rtol=1e-5, atol=1e-5)


def test_kv_cache_errors():
    model = _model()
    cache = model.new_kv_cache(2)
    model(torch.randint(0, 97, (2, 40)), kv_cache=cache)
    with pytest.raises(ValueError, match="after 40 cached positions"):
        model(torch.randint(0, 97, (2, 9)), kv_cache=cache)
    with pytest.raises(ValueError, match="batch_size 2"):
        model(torch.randint(0, 97, (3, 1)), kv_cache=cache)


def test_clear_errors_for_bad_input():
    with pytest.raises(ValueError, match=r"d_model \(50\) must be divisible by num_heads \(4\)"):
        _model(d_model=50)
    with pytest.raises(ValueError, match="norm_position"):
        _model(norm_position="sandwich")
    with pytest.raises(ValueError, match="use_rope must be true or false"):
        _model(use_rope="no")
    with pytest.raises(ValueError, match="num_layers must be a positive int"):
        _model(num_layers=0)
    model = _model()
    with pytest.raises(ValueError, match="longer than the model's context_length 48"):
        model(torch.zeros(1, 49, dtype=torch.long))
    with pytest.raises(ValueError, match=r"token ids must be in \[0, 96\].*\[1, 97\]"):
        model(torch.tensor([[1, 2, 97]]))
    with pytest.raises(ValueError, match=r"got ids in \[-1, 3\]"):
        model(torch.tensor([[-1, 3]]))
    with pytest.raises(ValueError, match="integer tensor of shape"):
        model(torch.zeros(2, 3))


def test_validate_false_skips_only_the_checks_that_read_values(monkeypatch):
    model = _model()
    ids, pos = torch.tensor([[5, 7], [1, 2]]), torch.tensor([[3, 4], [0, 1]])
    want = model(ids, token_positions=pos)

    def no_sync(*args, **kwargs):  # the range checks' host reads
        raise AssertionError("read back to the host")

    monkeypatch.setattr(torch, "aminmax", no_sync)
    monkeypatch.setattr(torch.Tensor, "max", no_sync)
    torch.testing.assert_close(model(ids, token_positions=pos, validate=False), want)
    with pytest.raises(AssertionError, match="read back"):
        model(ids, token_positions=pos)
    with pytest.raises(ValueError, match="integer tensor of shape"):  # shapes still checked
        model(torch.zeros(2, 3), validate=False)


def test_config_round_trips_and_builds_the_same_model(tmp_path):
    cfg = ModelConfig(**TINY, rope_theta=500.0, ffn="silu", tie_embeddings=True)
    assert ModelConfig.from_json(cfg.to_json()) == cfg
    assert ModelConfig.from_dict(cfg.to_dict()) == cfg
    model = TransformerLM.from_config(cfg)
    assert model.config == cfg
    clone = TransformerLM.from_config(ModelConfig.from_json(model.config.to_json()))
    clone.load_state_dict(model.state_dict())
    ids = torch.randint(0, 97, (2, 9))
    torch.testing.assert_close(clone(ids), model(ids))
    with pytest.raises(ValueError, match="unknown ModelConfig field"):
        ModelConfig.from_dict({**TINY, "n_layer": 3})
    assert ModelConfig(**{**TINY, "d_ff": None}).d_ff == 128  # 8/3·48 rounded up to 64
    with pytest.raises(ValueError, match="callable"):
        ModelConfig(**TINY, attention_backend=lambda q, k, v, c: q).to_json()
    with pytest.raises(KeyError, match="gpt2-small"):
        ModelConfig.from_preset("gpt3")


# --- ablation variants: each runs and differs from the default as intended ---------------


def _same_weights_logits(variant):
    base = _model()
    other = _model(**variant)
    other.load_state_dict(base.state_dict(), strict=False)
    ids = torch.randint(0, TINY["vocab_size"], (2, 16))
    return base, other, ids


def test_no_rmsnorm_has_no_norm_parameters():
    base, model, ids = _same_weights_logits({"use_rmsnorm": False})
    assert not any(".ln" in k or k.startswith("ln") for k in model.state_dict())
    assert len(model.state_dict()) == len(base.state_dict()) - (2 * TINY["num_layers"] + 1)
    assert torch.isfinite(model(ids)).all()
    assert not torch.allclose(model(ids), base(ids))


def test_post_norm_normalises_after_the_residual():
    base, model, ids = _same_weights_logits({"norm_position": "post"})
    assert "ln_final.weight" not in model.state_dict()
    x = torch.randn(2, 5, TINY["d_model"])
    block = model.layers[0]
    h = block.ln1(x + block.attn(x))
    torch.testing.assert_close(block(x), block.ln2(h + block.ffn(h)))
    assert not torch.allclose(model(ids), base(ids))


def test_nope_is_order_sensitive_only_through_the_causal_mask():
    base, model, ids = _same_weights_logits({"use_rope": False})
    assert model.layers[0].attn.rope is None
    assert not torch.allclose(model(ids), base(ids))
    # one layer without positions: the last token attends to the same SET of tokens
    # whatever the order of its prefix; with RoPE the order matters
    nope, rope = _model(num_layers=1, use_rope=False), _model(num_layers=1)
    rope.load_state_dict(nope.state_dict())
    perm = torch.cat([torch.randperm(15), torch.tensor([15])])
    torch.testing.assert_close(nope(ids[:, perm])[:, -1], nope(ids)[:, -1], rtol=1e-5, atol=1e-5)
    assert not torch.allclose(rope(ids[:, perm])[:, -1], rope(ids)[:, -1], atol=1e-3)
    # ...and the causal mask alone still breaks the symmetry at the other positions
    assert not torch.allclose(nope(ids[:, perm])[:, :-1], nope(ids)[:, perm[:-1]], atol=1e-3)


def test_silu_ffn_matches_swiglu_parameter_count():
    from cs336_common import count_parameters

    base, model = _model(), _model(ffn="silu")
    ids = torch.randint(0, TINY["vocab_size"], (2, 16))
    assert set(model.layers[0].ffn.state_dict()) == {"w1.weight", "w2.weight"}
    assert model.layers[0].ffn.w1.weight.shape == (3 * TINY["d_ff"] // 2, TINY["d_model"])
    assert count_parameters(model)["total"] == count_parameters(base)["total"]
    assert torch.isfinite(model(ids)).all()


def test_tied_embeddings_share_one_tensor():
    model = _model(tie_embeddings=True)
    assert model.token_embeddings.weight is model.lm_head.weight
    n_untied = sum(p.numel() for p in _model().parameters())
    n_tied = sum(p.numel() for p in model.parameters())
    assert n_untied - n_tied == TINY["vocab_size"] * TINY["d_model"]
    ids = torch.randint(0, TINY["vocab_size"], (2, 8))
    model(ids).sum().backward()  # one gradient, from both uses
    assert model.lm_head.weight.grad is model.token_embeddings.weight.grad
    sd = model.state_dict()
    reloaded = _model(tie_embeddings=True)
    reloaded.load_state_dict(sd)
    assert reloaded.token_embeddings.weight is reloaded.lm_head.weight


def test_torch_compile_fullgraph_has_no_graph_breaks():
    torch._dynamo.reset()
    model = _model(num_layers=2)
    compiled = torch.compile(model, fullgraph=True)
    ids = torch.randint(0, TINY["vocab_size"], (2, 12))
    torch.testing.assert_close(compiled(ids), model(ids), rtol=1e-5, atol=1e-5)


@pytest.mark.gpu
@pytest.mark.parametrize("backend", ["naive", "torch"])
def test_bf16_autocast_on_cuda(backend):
    model = _model(attention_backend=backend).cuda()
    ids = torch.randint(0, TINY["vocab_size"], (4, 32), device="cuda")
    ref = model(ids)
    with torch.autocast("cuda", dtype=torch.bfloat16):
        logits = model(ids)
        loss = F.cross_entropy(logits.flatten(0, 1).float(), ids.flatten())
    assert logits.dtype == torch.bfloat16
    loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())
    torch.testing.assert_close(logits.float(), ref, rtol=0.05, atol=0.05)
    cache = model.new_kv_cache(4, dtype=torch.bfloat16)
    with torch.autocast("cuda", dtype=torch.bfloat16):
        step = torch.cat(
            [model(ids[:, :30], kv_cache=cache), model(ids[:, 30:31], kv_cache=cache)], 1
        )
    torch.testing.assert_close(step.float(), ref[:, :31], rtol=0.05, atol=0.05)


def test_kv_cache_overflow_is_a_clear_error():
    from cs336_common import KVCache

    cache = KVCache(1, 2, 3, 8, 4)
    k = torch.randn(2, 3, 6, 4)
    cache.update(0, k, k)
    cache.advance(6)
    with pytest.raises(ValueError, match="holds 8 positions; 6 are used and 6 more"):
        cache.update(0, k, k)


def test_meta_device_init_then_reset_parameters():
    meta = _model(device="meta")
    assert meta.layers[0].attn.rope.cos.is_meta
    model = meta.to_empty(device="cpu")
    for m in model.modules():
        if hasattr(m, "reset_parameters"):
            m.reset_parameters()
    fresh = _model()
    torch.testing.assert_close(model.layers[1].attn.rope.cos, fresh.layers[1].attn.rope.cos)
    fresh.load_state_dict(model.state_dict())
    ids = torch.randint(0, TINY["vocab_size"], (2, 10))
    torch.testing.assert_close(model(ids), fresh(ids))
    assert model.layers[0].ln1.weight.eq(1).all()


def _left_padded(rows, pad_id=0):
    longest = max(len(r) for r in rows)
    ids = torch.full((len(rows), longest), pad_id)
    mask = torch.zeros(len(rows), longest, dtype=torch.bool)
    for i, r in enumerate(rows):
        ids[i, longest - len(r) :], mask[i, longest - len(r) :] = r, True
    return ids, mask


@pytest.mark.parametrize("backend", ["naive", "torch"])
@pytest.mark.parametrize("variant", [{}, {"use_rope": False}, {"norm_position": "post"}])
def test_padded_batch_equals_each_row_alone(backend, variant):
    """Left-padded ragged rows with an attention mask give, at their real positions, the
    logits each row gives alone: without a cache, and as a cached prefill plus decoding."""
    model = _model(attention_backend=backend, dtype=torch.float64, **variant)
    rows = [torch.randint(0, TINY["vocab_size"], (n,)) for n in (9, 3, 14, 1)]
    ids, mask = _left_padded(rows, pad_id=5)
    alone = [model(r[None])[0] for r in rows]
    padded = model(ids, attention_mask=mask)
    for i, r in enumerate(rows):
        torch.testing.assert_close(padded[i, -len(r) :], alone[i])
    # explicit positions (the number of real tokens before each one) are the same thing
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    torch.testing.assert_close(model(ids, attention_mask=mask, token_positions=positions), padded)

    more = torch.randint(0, TINY["vocab_size"], (len(rows), 4))
    cache = model.new_kv_cache(len(rows))
    steps = [model(ids, cache, attention_mask=mask)[:, -1:]]
    steps += [model(more[:, t : t + 1], cache) for t in range(3)]  # cache keeps the mask
    steps.append(model(more[:, 3:], cache, token_positions=positions[:, -1:] + 4))
    for i, r in enumerate(rows):
        want = model(torch.cat((r, more[i]))[None])[0, len(r) - 1 :]
        torch.testing.assert_close(torch.cat(steps, dim=1)[i], want)


def test_no_mask_and_no_positions_change_nothing():
    model = _model()
    ids = torch.randint(0, TINY["vocab_size"], (3, 11))
    full = torch.ones(3, 11, dtype=torch.bool)
    torch.testing.assert_close(model(ids, attention_mask=full), model(ids))
    torch.testing.assert_close(
        model(ids, token_positions=torch.arange(11).expand(3, 11)), model(ids)
    )


def test_kv_cache_select_rows_drops_and_repeats_rows():
    model = _model(dtype=torch.float64)
    ids, mask = _left_padded([torch.randint(0, TINY["vocab_size"], (n,)) for n in (6, 2, 4)])
    cache = model.new_kv_cache(3)
    model(ids, cache, attention_mask=mask)
    reference = model.new_kv_cache(3)
    model(ids, reference, attention_mask=mask)
    rows = torch.tensor([2, 2, 0])
    cache.select_rows(rows)
    nxt = torch.randint(0, TINY["vocab_size"], (3, 1))
    nxt[1] = nxt[0]  # rows 0 and 1 are now copies of the same sequence
    got = model(nxt, cache)
    want = model(nxt[[2, 1, 0]], reference)  # original row 2 gets nxt[0], row 0 nxt[2]
    torch.testing.assert_close(got[[0, 2]], want[[2, 0]])
    torch.testing.assert_close(got[0], got[1])


def test_positions_beyond_the_context_are_rejected():
    model = _model()
    cache = model.new_kv_cache(1, max_seq_len=60)  # more slots than context, for padding
    model(torch.zeros(1, 47, dtype=torch.long), cache)
    with pytest.raises(ValueError, match="token position 48 is beyond"):
        model(torch.zeros(1, 1, dtype=torch.long), cache, token_positions=torch.tensor([[48]]))
