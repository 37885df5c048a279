"""Benchmark inputs built from real text installed by Debian packages (see NOTICE):
python3-doc's HTML pages (English prose, code and index pages), debian-reference-en, and
fortune cookies in seven languages (fortunes, fortunes-de/-es/-it/-ru/-pl) as small pages;
plus near-duplicate copies (one word changed) and exact copies, as in a real crawl.

    apt-get install python3-doc debian-reference-en fortunes fortunes-de fortunes-es \\
        fortunes-it fortunes-ru fortunes-pl
"""

from __future__ import annotations

import html
import random
from pathlib import Path

from cs336_data.warc import warc_record, write_warc

DOCS = [Path("/usr/share/doc/python3-doc/html"), Path("/usr/share/doc/debian-reference-en")]
FORTUNES = Path("/usr/share/games/fortunes")


def _fortune_pages(rng: random.Random, per_page: int = 4) -> list[bytes]:
    texts = []
    for path in sorted(FORTUNES.rglob("*")):
        if path.is_file() and not path.suffix and not path.is_symlink():
            raw = path.read_bytes().decode("utf-8", "replace")
            texts += [t.strip() for t in raw.split("\n%\n") if 80 < len(t.strip()) < 1500]
    rng.shuffle(texts)
    pages = []
    for i in range(0, len(texts) - per_page, per_page):
        body = "".join(f"<p>{html.escape(t)}</p>" for t in texts[i : i + per_page])
        pages.append(
            f"<html><head><meta charset='utf-8'></head><body>{body}</body></html>".encode()
        )
    return pages


def build_warcs(out: Path, files: int = 4, pages: int = 3000, seed: int = 0) -> list[Path]:
    """`files` .warc.gz files under `out` holding `pages` distinct pages (the Python and
    Debian documentation pages first, then fortune pages) plus 20% near and 10% exact
    copies; built once, then reused."""
    paths = [out / f"bench-{i}.warc.gz" for i in range(files)]
    if all(p.is_file() for p in paths):
        return paths
    missing = [d for d in [*DOCS, FORTUNES] if not d.exists()]
    if missing:
        raise SystemExit(f"{missing[0]} not found: apt-get install the packages in {__file__}")
    rng = random.Random(seed)
    docs = [p.read_bytes() for d in DOCS for p in sorted(d.rglob("*.html"))]
    distinct = (docs + _fortune_pages(rng))[:pages]
    near = [p.replace(b" the ", b" a ", 1) for p in rng.sample(distinct, len(distinct) // 5)]
    same = rng.sample(distinct, len(distinct) // 10)
    pages = distinct + near + same
    rng.shuffle(pages)
    out.mkdir(parents=True, exist_ok=True)
    for i, path in enumerate(paths):
        mine = pages[i::files]
        write_warc(
            path, (warc_record(f"https://bench.example/{i}/{n}", p) for n, p in enumerate(mine))
        )
    return paths


if __name__ == "__main__":
    import sys

    for p in build_warcs(Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/cs336-data-bench/warc")):
        print(p, p.stat().st_size)
