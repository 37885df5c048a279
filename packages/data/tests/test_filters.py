import codecs
import json
import random

import pytest

from cs336_data import classify_nsfw, classify_quality, classify_toxic_speech, gopher_quality_filter
from cs336_data.gopher import gopher_failures

# Clear cases in the style of Jigsaw's Wikipedia talk-page comments (written for this test)
TOXIC = [
    "You are a fucking idiot, go kill yourself you worthless piece of shit.",
    "Shut up, you stupid moron. Nobody cares about your crap edits, asshole.",
    "Stop deleting my stuff you dumb bitch, get a life you pathetic loser",
    "FUCK YOU AND YOUR FUCKING RULES, WIKIPEDIA ADMINS ARE ALL CUNTS",
    "this article is shit and whoever wrote it is a retarded piece of crap",
    "Go suck a dick, you ugly fat bastard. I hope you die.",
]
CLEAN = [
    "Thank you for your contribution to the article. I have added a citation to the talk page.",
    "Hi, I reverted your edit because it removed sourced material; please discuss it first.",
    "I agree with the proposed merge; the two sections cover the same topic.",
    "Could you please provide a reliable source for the population figure? Thanks.",
    "Welcome to Wikipedia! Here are a few links that may help you get started.",
    "The infobox image has been replaced with a higher-resolution version from Commons.",
]


@pytest.mark.parametrize("text", TOXIC)
def test_toxic_and_nsfw_flagged(text):
    assert classify_toxic_speech(text)[0] == "toxic"
    assert classify_nsfw(text)[0] == "nsfw"


@pytest.mark.parametrize("text", CLEAN)
def test_polite_comments_pass(text):
    label, score = classify_toxic_speech(text)
    assert label == "non-toxic" and 0.5 <= score <= 1.0
    assert classify_nsfw(text)[0] == "non-nsfw"


def test_offensive_default_on_labelled_fortunes(fixtures):
    """Held-out accuracy on text labelled by Debian's fortune maintainers, not by the model's
    authors: fortunes-off's `vulgarity` vs ordinary fortunes (benchmarks/offensive_accuracy.py
    builds the sample; measured accuracy 0.791, precision 0.950, recall 0.614). A random
    model scores about 0.5; one that flags everything has precision 0.5."""
    rows = [json.loads(line) for line in (fixtures / "offensive_fortunes.jsonl").open()]
    texts = [codecs.decode(r["text"], "rot13") for r in rows]
    truth = [r["label"] == "offensive" for r in rows]
    assert sum(truth) == len(truth) - sum(truth) == 184
    for fn, positive in ((classify_toxic_speech, "toxic"), (classify_nsfw, "nsfw")):
        pred = [fn(t)[0] == positive for t in texts]
        hits = sum(t and p for t, p in zip(truth, pred, strict=True))
        accuracy = sum(t == p for t, p in zip(truth, pred, strict=True)) / len(rows)
        assert accuracy >= 0.77 and hits / sum(pred) >= 0.92 and hits / sum(truth) >= 0.58


def test_quality_on_course_samples(fixtures):
    assert classify_quality((fixtures / "high_quality_wiki_reference.txt").read_text())[0] == "wiki"
    label, score = classify_quality((fixtures / "low_quality_cc.txt").read_text())
    assert label == "cc" and 0.5 <= score <= 1.0


def _words(rng, n, length=5):
    return [
        "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(length)) for _ in range(n)
    ]


def test_gopher_word_count_bounds():
    rng = random.Random(0)
    assert not gopher_quality_filter(" ".join(_words(rng, 49)))
    assert gopher_quality_filter(" ".join(_words(rng, 50)))
    assert gopher_failures(" ".join(["word"] * 100_001)) == ["word_count"]


def test_gopher_mean_word_length():
    assert gopher_failures(" ".join(["ab"] * 100)) == ["mean_word_length"]
    assert gopher_quality_filter(" ".join(["abc"] * 100))
    assert gopher_failures(" ".join(["a" * 11] * 100)) == ["mean_word_length"]
    assert gopher_quality_filter(" ".join(["a" * 10] * 100))


def test_gopher_ellipsis_lines():
    rng = random.Random(1)
    lines = [" ".join(_words(rng, 10)) for _ in range(10)]
    ok = [line + "..." if i < 3 else line for i, line in enumerate(lines)]
    bad = [line + "..." if i < 4 else line for i, line in enumerate(lines)]
    assert gopher_quality_filter("\n".join(ok))
    assert gopher_failures("\n".join(bad)) == ["ellipsis_lines"]


def test_gopher_alphabetic_words():
    rng = random.Random(2)
    words = _words(rng, 80)
    assert gopher_quality_filter(" ".join(words + ["1234"] * 20))  # exactly 80% alphabetic
    assert gopher_failures(" ".join(words + ["1234"] * 21)) == ["alphabetic_words"]


def test_offensive_model_matches_alt_profanity_check(fixtures):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        profanity_check = pytest.importorskip("profanity_check")
    from cs336_data.harmful import offensive_probability

    rng = random.Random(7)
    wiki = (fixtures / "high_quality_wiki_reference.txt").read_text().split()
    texts = [*TOXIC, *CLEAN, "", "12345 !!!", "Ünïcödé wörds", "fuck " * 3]
    texts += [" ".join(rng.choice(wiki + TOXIC[0].split()) for _ in range(40)) for _ in range(30)]
    want = profanity_check.predict_prob(texts)
    got = [offensive_probability(t) for t in texts]
    assert got == pytest.approx(want, abs=1e-6)
