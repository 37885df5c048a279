"""Accuracy of the offline NSFW / toxic-speech default (alt-profanity-check's model) on
text labelled by people who did not train it: Debian's fortune cookies, which the fortune
maintainers sorted into offensive (`fortunes-off`, stored rot13) and inoffensive ones.

The shipped sample (tests/fixtures/offensive_fortunes.jsonl, rot13 as Debian ships it) is
every fortune of fortunes-off's `vulgarity` file (20-1000 characters) as "offensive" and as
many fortunes drawn with seed 0 from the English files of `fortunes`/`fortunes-min` as
"clean". This script rebuilds it (--write), scores both functions on it, and prints the
share flagged in every fortunes-off file (its "offensive" is broader than toxic: criticism
of religion, politics, limericks).

fortunes-off left Debian in bookworm (fortune-mod 1:1.99.1-7.3); take bullseye's package:
    apt-get download fortunes-off/bullseye   # with bullseye in APT's sources
    dpkg-deb -x fortunes-off_*.deb /tmp/foff
    uv run python packages/data/benchmarks/offensive_accuracy.py \\
        --off /tmp/foff/usr/share/games/fortunes/off [--write]
"""

from __future__ import annotations

import argparse
import codecs
import json
import random
import subprocess
from pathlib import Path

from cs336_data import classify_nsfw, classify_toxic_speech

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "tests/fixtures/offensive_fortunes.jsonl"
ON = Path("/usr/share/games/fortunes")
NOT_PROSE = {"ascii-art", "translate-me", "disclaimer"}


def fortunes(path: Path, rot13: bool) -> list[str]:
    text = path.read_text(encoding="utf-8", errors="replace")
    text = codecs.decode(text, "rot13") if rot13 else text
    return [t.strip() for t in text.split("\n%\n") if 20 <= len(t.strip()) <= 1000]


def english_files() -> list[Path]:
    """Data files of Debian's English `fortunes` and `fortunes-min` packages."""
    listed = subprocess.run(["dpkg", "-L", "fortunes", "fortunes-min"], capture_output=True,
                            text=True, check=True).stdout.split()  # fmt: skip
    names = {Path(p).name for p in listed if p.startswith(str(ON) + "/")}
    return [ON / n for n in sorted(names) if "." not in n and n not in NOT_PROSE]


def build_sample(off: Path) -> list[dict]:
    positives = fortunes(off / "vulgarity", rot13=True)
    clean = [(f.name, t) for f in english_files() for t in fortunes(f, rot13=False)]
    clean = random.Random(0).sample(clean, len(positives))
    rows = [{"label": "offensive", "source": "fortunes-off/vulgarity", "text": t}
            for t in positives]  # fmt: skip
    rows += [{"label": "clean", "source": f"fortunes/{name}", "text": t} for name, t in clean]
    return rows


def metrics(truth: list[bool], pred: list[bool]) -> dict[str, float]:
    tp = sum(t and p for t, p in zip(truth, pred, strict=True))
    fp = sum(p and not t for t, p in zip(truth, pred, strict=True))
    fn = sum(t and not p for t, p in zip(truth, pred, strict=True))
    right = sum(t == p for t, p in zip(truth, pred, strict=True))
    return {"accuracy": right / len(truth), "precision": tp / max(tp + fp, 1),
            "recall": tp / max(tp + fn, 1)}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--off", type=Path, required=True, help="fortunes-off's data folder")
    ap.add_argument("--write", action="store_true", help=f"rewrite {SAMPLE.name}")
    args = ap.parse_args()
    rows = build_sample(args.off)
    if args.write:
        with SAMPLE.open("w", encoding="utf-8") as f:
            for r in rows:  # rot13, as Debian ships offensive fortunes
                r = {**r, "text": codecs.encode(r["text"], "rot13")}
                f.write(json.dumps(r, ensure_ascii=False) + "\n")
    truth = [r["label"] == "offensive" for r in rows]
    n = len(rows)
    print(f"sample: {sum(truth)} offensive (fortunes-off/vulgarity), {n - sum(truth)} clean\n")
    print("| function | accuracy | precision | recall |\n| --- | --- | --- | --- |")
    for fn, positive in ((classify_toxic_speech, "toxic"), (classify_nsfw, "nsfw")):
        m = metrics(truth, [fn(r["text"])[0] == positive for r in rows])
        print(f"| {fn.__name__} | {m['accuracy']:.3f} | {m['precision']:.3f} | "
              f"{m['recall']:.3f} |")  # fmt: skip
    print("\nshare flagged (P(offensive) >= 0.5) per file, fortunes of 20-1000 characters:")
    print("| file | fortunes | flagged |\n| --- | --- | --- |")
    for f in sorted(args.off.iterdir()):
        texts = fortunes(f, rot13=True) if not f.suffix and f.is_file() else []
        if len(texts) >= 20:
            flagged = sum(classify_toxic_speech(t)[0] == "toxic" for t in texts)
            print(f"| fortunes-off/{f.name} | {len(texts)} | {flagged / len(texts):.1%} |")
    clean = [t for f in english_files() for t in fortunes(f, rot13=False)]
    flagged = sum(classify_toxic_speech(t)[0] == "toxic" for t in clean)
    print(f"| fortunes (English, inoffensive; all files) | {len(clean)} | "
          f"{flagged / len(clean):.1%} |")  # fmt: skip


if __name__ == "__main__":
    main()
