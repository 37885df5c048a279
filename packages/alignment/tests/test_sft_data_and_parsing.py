import json
from pathlib import Path

import pytest
import torch

from cs336_alignment import (
    PackedSFTDataset,
    compute_per_instance_dpo_loss,
    iterate_batches,
    load_prompt,
    parse_gsm8k_response,
    parse_mmlu_response,
)
from cs336_alignment.prompt_templates import alpaca_prompt

SAMPLE = Path(__file__).resolve().parent / "fixtures" / "sft_sample.jsonl"


@pytest.mark.parametrize("kind", ["hf", "ours"])
def test_packed_sft_dataset_windows(kind, hf_tokenizer, our_tokenizer):
    tok = hf_tokenizer if kind == "hf" else our_tokenizer
    ds = PackedSFTDataset(tok, SAMPLE, seq_length=32, shuffle=False)
    template = load_prompt("alpaca_sft")
    ids = []
    for line in SAMPLE.read_text().splitlines():
        row = json.loads(line)
        text = template.format(instruction=row["prompt"], response=row["response"])
        ids += hf_tokenizer(text)["input_ids"] + [hf_tokenizer.eos_token_id]
    assert len(ds) == (len(ids) - 1) // 32
    for i in (0, 5, len(ds) - 1):
        assert ds[i]["input_ids"].tolist() == ids[i * 32 : i * 32 + 32]
        assert ds[i]["labels"].tolist() == ids[i * 32 + 1 : i * 32 + 33]
    with pytest.raises(IndexError):
        ds[len(ds)]


def test_packed_sft_shuffle_keeps_the_tokens(hf_tokenizer):
    torch.manual_seed(0)
    a = PackedSFTDataset(hf_tokenizer, SAMPLE, 16, shuffle=False)
    import random

    random.seed(1)
    b = PackedSFTDataset(hf_tokenizer, SAMPLE, 16, shuffle=True)
    assert sorted(a.ids.tolist()) == sorted(b.ids.tolist())
    assert a.ids.tolist() != b.ids.tolist()


def test_iterate_batches_covers_the_dataset(hf_tokenizer):
    ds = PackedSFTDataset(hf_tokenizer, SAMPLE, 16, shuffle=False)
    batches = list(iterate_batches(ds, batch_size=8, shuffle=True))
    assert len(batches) == -(-len(ds) // 8)
    assert batches[0]["input_ids"].shape == (8, 16)
    seen = torch.cat([b["input_ids"] for b in batches])
    assert sorted(map(tuple, seen.tolist())) == sorted(
        tuple(ds[i]["input_ids"].tolist()) for i in range(len(ds))
    )


def test_packed_sft_bad_rows(tmp_path, hf_tokenizer):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "x"}\n')
    with pytest.raises(ValueError, match="row 1 lacks"):
        PackedSFTDataset(hf_tokenizer, bad, 8, False)
    bad.write_text("{oops\n")
    with pytest.raises(ValueError, match=r"bad\.jsonl:1: malformed JSON"):
        PackedSFTDataset(hf_tokenizer, bad, 8, False)


def test_parse_mmlu_response():
    ex = {"subject": "x", "question": "q", "options": ["a", "b", "c", "d"], "answer": "B"}
    assert parse_mmlu_response(ex, "The correct answer is B. Grothendieck") == "B"
    assert parse_mmlu_response(ex, "Hmm, the correct answer is (D).") == "D"
    assert parse_mmlu_response(ex, "The correct answer is 10000 polynomials") is None
    assert parse_mmlu_response(ex, "I think A or C") is None


@pytest.mark.parametrize(
    "text,want",
    [
        ("So she makes 18 dollars", "18"),
        ("2 + 3 = 5, then 5 * 1,234 = 6,170.", "6170"),
        ("the loss is -3.5 units", "-3.5"),
        ("The answer is .5", ".5"),
        ("no digits here", None),
    ],
)
def test_parse_gsm8k_response(text, want):
    assert parse_gsm8k_response(text) == want


def test_dpo_loss_matches_full_sequence_reference(hf_tokenizer, make_qwen2):
    lm, ref = make_qwen2(1), make_qwen2(2)
    prompt, good, bad = "Name a colour.", "Blue is a colour.", "I like trains."
    loss = compute_per_instance_dpo_loss(lm, ref, hf_tokenizer, 0.5, prompt, good, bad)

    def seq_logp(model, response):  # the course's way: the whole sequence's log-prob
        ids = hf_tokenizer(alpaca_prompt(prompt) + response + "<|endoftext|>")["input_ids"]
        ids = torch.tensor([ids])
        with torch.no_grad():
            logits = model(ids).logits.double()
        return torch.log_softmax(logits[0, :-1], -1).gather(-1, ids[0, 1:, None]).sum()

    margin = (seq_logp(lm, good) - seq_logp(ref, good)) - (seq_logp(lm, bad) - seq_logp(ref, bad))
    want = -torch.nn.functional.logsigmoid(0.5 * margin)
    assert loss.item() == pytest.approx(want.item(), rel=1e-4)
    loss.backward()
    assert lm.model.embed_tokens.weight.grad is not None
    assert ref.model.embed_tokens.weight.grad is None
