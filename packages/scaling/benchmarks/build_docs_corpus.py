"""Build a larger English training text for a real sweep from Debian packages installed on
this machine: the Linux kernel's documentation (`linux-doc`, reStructuredText), Python's
(`python3.11-doc`, the reStructuredText sources), Perl's (`perl-doc`, POD), the Debian
Administrator's Handbook (`debian-handbook`, English HTML) and the fortunes corpus that
cs336-basics ships. The 0.93M-token fortunes file the service trains on by default is far
too small for budgets of 1e14 FLOPs and up: one run would see it dozens of times.

Each source file is cut into pieces of about 8 KB at paragraph breaks; the pieces are
shuffled with a fixed seed (so the held-out tail of the token file is an i.i.d. sample of
all sources) and joined with ``<|endoftext|>``. Stdlib only; the text is not shipped (it
stays under the licenses of its packages) but rebuilt by `gpu_sweep_docs.sh`:

    python3 packages/scaling/benchmarks/build_docs_corpus.py OUT.txt
"""

import gzip
import html.parser
import lzma
import random
import sys
from pathlib import Path

EOS = "<|endoftext|>"
PIECE_CHARS = 8192
REPO = Path(__file__).resolve().parents[3]
SOURCES = {
    "linux-doc": ("/usr/share/doc/linux-doc-6.1/Documentation", "*.rst.gz"),
    "python3.11-doc": ("/usr/share/doc/python3.11/html/_sources", "*.rst.txt"),
    "perl-doc": ("/usr/share/perl/5.36/pod", "*.pod"),
    "debian-handbook": ("/usr/share/doc/debian-handbook/html/en-US", "*.html"),
}


class _Text(html.parser.HTMLParser):
    """Visible text of an HTML page: everything outside script/style, one block per line."""

    def __init__(self):
        super().__init__()
        self.parts, self._skip = [], 0

    def handle_starttag(self, tag, attrs):
        self._skip += tag in ("script", "style")
        if tag in ("p", "div", "li", "h1", "h2", "h3", "pre", "tr", "br"):
            self.parts.append("\n\n")

    def handle_endtag(self, tag):
        self._skip -= tag in ("script", "style") and self._skip > 0

    def handle_data(self, data):
        if not self._skip:
            self.parts.append(data)


def _read(path: Path) -> str:
    if path.suffix == ".gz":
        return gzip.decompress(path.read_bytes()).decode("utf-8", "replace")
    text = path.read_text(encoding="utf-8", errors="replace")
    if path.suffix == ".html":
        parser = _Text()
        parser.feed(text)
        text = "".join(parser.parts)
    return text


def _pieces(text: str):
    """Cut at blank lines into pieces of at most about PIECE_CHARS characters."""
    piece = []
    size = 0
    for para in text.split("\n\n"):
        para = para.strip("\n")
        if not para.strip():
            continue
        if size + len(para) > PIECE_CHARS and piece:
            yield "\n\n".join(piece)
            piece, size = [], 0
        piece.append(para)
        size += len(para) + 2
    if piece:
        yield "\n\n".join(piece)


def main(out: Path) -> None:
    pieces, counts = [], {}
    for name, (root, pattern) in SOURCES.items():
        files = sorted(Path(root).rglob(pattern))
        if not files:
            sys.exit(f"{root}: no {pattern} files (install the Debian package {name})")
        before = len(pieces)
        for path in files:
            pieces.extend(_pieces(_read(path)))
        counts[name] = (len(files), len(pieces) - before)
    fortunes = REPO / "packages/basics/src/cs336_basics/corpus/fortunes.txt.xz"
    text = lzma.decompress(fortunes.read_bytes()).decode("utf-8")
    before = len(pieces)
    pieces.extend(f for f in text.split(EOS) if f.strip())
    counts["fortunes"] = (1, len(pieces) - before)
    random.Random(0).shuffle(pieces)
    out.write_text("".join(p + EOS for p in pieces), encoding="utf-8")
    for name, (files, n) in counts.items():
        print(f"{name:16} {files:6} files {n:8} pieces")
    print(f"{out}: {sum(map(len, pieces)):,} characters in {len(pieces):,} pieces")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
