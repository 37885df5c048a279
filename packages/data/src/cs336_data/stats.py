"""Per-stage counters: documents and bytes in and out, removals by rule, languages, and a
few removed documents per rule for inspection. Shards write theirs; reports add them up."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

SAMPLES_PER_RULE = 5
SAMPLE_CHARS = 600


@dataclass
class StageStats:
    docs_in: int = 0
    docs_out: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    removed: Counter = field(default_factory=Counter)
    languages: Counter = field(default_factory=Counter)
    samples: dict[str, list[dict]] = field(default_factory=dict)

    def take_in(self, nbytes: int) -> None:
        self.docs_in += 1
        self.bytes_in += nbytes

    def keep(self, nbytes: int) -> None:
        self.docs_out += 1
        self.bytes_out += nbytes

    def remove(self, rule: str, doc: dict | None = None) -> None:
        self.removed[rule] += 1
        if doc is None:
            return
        samples = self.samples.setdefault(rule, [])
        if len(samples) < SAMPLES_PER_RULE:
            meta = doc.get("metadata", {})
            samples.append(
                {"id": doc.get("id"), "url": meta.get("url"), "text": doc["text"][:SAMPLE_CHARS]}
            )

    def add(self, other: StageStats) -> None:
        self.docs_in += other.docs_in
        self.docs_out += other.docs_out
        self.bytes_in += other.bytes_in
        self.bytes_out += other.bytes_out
        self.removed.update(other.removed)
        self.languages.update(other.languages)
        for rule, samples in other.samples.items():
            mine = self.samples.setdefault(rule, [])
            mine.extend(samples[: SAMPLES_PER_RULE - len(mine)])

    def to_json(self) -> dict:
        return {
            "docs_in": self.docs_in,
            "docs_out": self.docs_out,
            "bytes_in": self.bytes_in,
            "bytes_out": self.bytes_out,
            "removed": dict(self.removed.most_common()),
            "languages": dict(self.languages.most_common()),
            "samples": self.samples,
        }

    @classmethod
    def from_json(cls, d: dict) -> StageStats:
        return cls(
            d["docs_in"],
            d["docs_out"],
            d["bytes_in"],
            d["bytes_out"],
            Counter(d["removed"]),
            Counter(d["languages"]),
            d["samples"],
        )
