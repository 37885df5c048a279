"""Export to LlamaForCausalLM and back: equal logits, equal token ids."""

import pytest
import torch

from cs336_alignment.hf_export import export_to_hf, import_from_hf, to_hf_model

TEXTS = ["Hello, world! 123 + 456 = 579", "  spaces\tand\nnewlines<|endoftext|>ünïcödé 🙂"]


@pytest.mark.parametrize("tie", [False, True])
def test_llama_export_gives_equal_logits(tie):
    from cs336_common import TransformerLM

    torch.manual_seed(0)
    ours = TransformerLM(97, 64, 48, 2, 3, 80, rope_theta=500.0, tie_embeddings=tie).eval()
    hf = to_hf_model(ours)
    ids = torch.randint(0, 97, (3, 40))
    with torch.no_grad():
        torch.testing.assert_close(hf(ids).logits, ours(ids), atol=2e-5, rtol=1e-4)


def test_export_round_trip_through_a_directory(tmp_path, our_tokenizer, make_lm):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    ours = make_lm(3, vocab_size=our_tokenizer.vocab_size)
    export_to_hf(ours, our_tokenizer, tmp_path / "hf")
    hf_tok = AutoTokenizer.from_pretrained(tmp_path / "hf")
    hf = AutoModelForCausalLM.from_pretrained(tmp_path / "hf").eval()
    for text in TEXTS:
        assert hf_tok(text)["input_ids"] == our_tokenizer.encode(text)
        assert hf_tok.decode(our_tokenizer.encode(text)) == text
    ids = torch.tensor([our_tokenizer.encode(TEXTS[0])])
    with torch.no_grad():
        torch.testing.assert_close(hf(ids).logits, ours(ids), atol=2e-5, rtol=1e-4)
    back, back_tok = import_from_hf(tmp_path / "hf")
    for k, v in ours.state_dict().items():
        assert torch.equal(back.state_dict()[k], v), k
    for text in TEXTS:
        assert back_tok.encode(text) == our_tokenizer.encode(text)


def test_unsupported_variants_are_refused():
    from cs336_common import TransformerLM

    with pytest.raises(ValueError, match="norm_position='post'"):
        to_hf_model(TransformerLM(11, 8, 8, 1, 2, 16, norm_position="post"))
