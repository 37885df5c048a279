"""Train the shipped quality classifier (src/cs336_data/models/quality.ftz) and measure it.

Real text that Debian packages install, cut into ~150-word documents:
  wiki (reference prose): the Python tutorial, HOWTOs, FAQ and language reference
    (python3-doc) and the Debian Reference (debian-reference-en);
  cc (typical crawl text): navigation/index pages of the same docs (genindex, module index,
    search, "what's new" change lists), Debian changelogs and copyright files
    (/usr/share/doc/*/changelog.Debian.gz, copyright), and fortune cookies (fortunes).
Documents are split 80/20 by source file (no file in both), so the held-out score is on
unseen pages. The course's wiki/cc samples (tests/fixtures) are a second held-out check.

    apt-get install python3-doc debian-reference-en fortunes
    uv run python packages/data/benchmarks/train_quality.py
"""

from __future__ import annotations

import gzip
import random
import tempfile
from pathlib import Path

from cs336_data.extract import extract_text_from_html_bytes
from cs336_data.quality import classify_quality, train_quality_model

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "src/cs336_data/models/quality.ftz"
PY = Path("/usr/share/doc/python3-doc/html")
DR = Path("/usr/share/doc/debian-reference-en/docs")
WORDS = 150


def _chunks(text: str) -> list[str]:
    words = text.split()
    return [" ".join(words[i : i + WORDS]) for i in range(0, len(words) - WORDS // 3, WORDS)]


def _html(path: Path) -> str:
    return extract_text_from_html_bytes(path.read_bytes()) or ""


def _files() -> dict[str, list[tuple[Path, str]]]:
    wiki = [p for d in ("tutorial", "howto", "faq", "reference") for p in (PY / d).glob("*.html")]
    wiki += sorted(DR.glob("ch*.en.html"))
    cc = [*sorted(PY.glob("genindex-*.html")), PY / "py-modindex.html", PY / "search.html"]
    cc += sorted((PY / "whatsnew").glob("changelog.html"))
    cc += sorted(Path("/usr/share/doc").glob("*/changelog.Debian.gz"))[:300]
    cc += sorted(Path("/usr/share/doc").glob("*/copyright"))[:300]
    cc += [p for p in Path("/usr/share/games/fortunes").glob("*") if not p.suffix]
    return {"wiki": [(p, "html") for p in wiki], "cc": [(p, _kind(p)) for p in cc]}


def _kind(p: Path) -> str:
    return "html" if p.suffix == ".html" else "gz" if p.suffix == ".gz" else "text"


def _read(path: Path, kind: str) -> str:
    if kind == "html":
        return _html(path)
    raw = gzip.decompress(path.read_bytes()) if kind == "gz" else path.read_bytes()
    return raw.decode("utf-8", "replace")


def main() -> None:
    import argparse

    ap = argparse.ArgumentParser(description="train and measure the quality classifier")
    ap.add_argument("--out", type=Path, default=OUT, help=f"model file ({OUT.name} shipped)")
    out = ap.parse_args().out
    rng = random.Random(0)
    split = {"train": {"wiki": [], "cc": []}, "test": {"wiki": [], "cc": []}}
    for label, files in _files().items():
        for path, kind in files:
            if path.is_file():
                part = "test" if rng.random() < 0.2 else "train"
                split[part][label] += _chunks(_read(path, kind))
    for label in ("wiki", "cc"):  # balance the classes
        rng.shuffle(split["train"][label])
    n = min(len(split["train"]["wiki"]), len(split["train"]["cc"]))
    with tempfile.TemporaryDirectory() as tmp:
        files = {}
        for label in ("wiki", "cc"):
            files[label] = Path(tmp) / f"{label}.txt"
            files[label].write_text("\n".join(split["train"][label][:n]) + "\n")
        train_quality_model(files["wiki"], files["cc"], out)
    print(f"trained on {n} + {n} documents -> {out} ({out.stat().st_size / 1e3:.0f} KB)")
    for label in ("wiki", "cc"):
        docs = split["test"][label]
        right = sum(classify_quality(d, str(out))[0] == label for d in docs)
        print(f"held-out {label}: {right}/{len(docs)} = {right / len(docs):.3f}")
    fx = ROOT / "tests/fixtures"
    for name in ("high_quality_wiki_reference.txt", "low_quality_cc.txt"):
        print(name, classify_quality((fx / name).read_text(), str(out)))


if __name__ == "__main__":
    main()
