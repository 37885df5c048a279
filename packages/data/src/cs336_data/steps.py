"""Per-document steps: each annotates `doc["metadata"]` and returns the rule that removes
the document, or None to keep it. The pipeline runs them in order on every document."""

from __future__ import annotations

import os
from dataclasses import dataclass, field


@dataclass
class LangId:
    """Keep documents in `languages` (all if empty) identified with at least `min_score`."""

    languages: list[str] = field(default_factory=lambda: ["en"])
    min_score: float = 0.65
    model: str | None = None
    name = "langid"

    def __post_init__(self):
        langs = self.languages
        if not isinstance(langs, list) or not all(isinstance(x, str) and x for x in langs):
            raise ValueError(
                f"[langid] languages must be a list of ISO codes like ['en'], got {langs!r}"
            )
        _check(self, fractions=("min_score",), models=("model",))

    def __call__(self, doc: dict) -> str | None:
        from cs336_data.langid import identify_language

        lang, score = identify_language(doc["text"], self.model)
        doc["metadata"].update(language=lang, language_score=round(score, 4))
        if self.languages and lang not in self.languages:
            return "language"
        return "language_score" if score < self.min_score else None


@dataclass
class Gopher:
    """The Gopher quality rules; the first rule a document breaks names its removal."""

    name = "gopher"

    def __call__(self, doc: dict) -> str | None:
        from cs336_data.gopher import gopher_failures

        failures = gopher_failures(doc["text"])
        return f"gopher_{failures[0]}" if failures else None


@dataclass
class Harmful:
    """Remove documents classified NSFW or toxic with at least the given confidence."""

    nsfw_threshold: float = 0.5
    toxic_threshold: float = 0.5
    nsfw_model: str | None = None
    toxic_model: str | None = None
    name = "harmful"

    def __post_init__(self):
        _check(self, ("nsfw_threshold", "toxic_threshold"), ("nsfw_model", "toxic_model"))

    def __call__(self, doc: dict) -> str | None:
        from cs336_data.harmful import classify_nsfw, classify_toxic_speech

        nsfw, p_nsfw = classify_nsfw(doc["text"], self.nsfw_model)
        toxic, p_toxic = classify_toxic_speech(doc["text"], self.toxic_model)
        p_nsfw = p_nsfw if nsfw == "nsfw" else 1 - p_nsfw
        p_toxic = p_toxic if toxic == "toxic" else 1 - p_toxic
        doc["metadata"].update(nsfw=round(p_nsfw, 4), toxic=round(p_toxic, 4))
        if p_nsfw >= self.nsfw_threshold:
            return "nsfw"
        return "toxic" if p_toxic >= self.toxic_threshold else None


@dataclass
class Quality:
    """Keep documents whose probability of "wiki" is at least `min_wiki`."""

    min_wiki: float = 0.5
    model: str | None = None
    name = "quality"

    def __post_init__(self):
        _check(self, fractions=("min_wiki",), models=("model",))

    def __call__(self, doc: dict) -> str | None:
        from cs336_data.quality import classify_quality

        label, p = classify_quality(doc["text"], self.model)
        p_wiki = p if label == "wiki" else 1 - p
        doc["metadata"]["quality_wiki"] = round(p_wiki, 4)
        return "low_quality" if p_wiki < self.min_wiki else None


@dataclass
class Mask:
    """Replace e-mail addresses, phone numbers and IPs; never removes a document."""

    name = "mask"

    def __call__(self, doc: dict) -> str | None:
        from cs336_data.pii import mask_emails, mask_ips, mask_phone_numbers

        text = doc["text"]
        counts = {}
        for kind, fn in (("email", mask_emails), ("phone", mask_phone_numbers), ("ip", mask_ips)):
            text, counts[kind] = fn(text)
        doc["text"] = text
        doc["metadata"]["pii_masked"] = counts
        return None


def _check(step, fractions=(), models=()) -> None:
    """Options wrong in a config or on the command line fail when the step is built, before
    any shard is read (not in every worker)."""
    for name in fractions:
        value = getattr(step, name)
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
            raise ValueError(f"[{step.name}] {name} must be a number in [0, 1], got {value!r}")
    for name in models:
        path = getattr(step, name)
        if path is not None and not os.path.isfile(path):
            raise FileNotFoundError(f"[{step.name}] {name} {path}: no such file")


STEPS = {cls.name: cls for cls in (LangId, Gopher, Harmful, Quality, Mask)}
