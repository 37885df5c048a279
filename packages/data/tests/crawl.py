"""A small but realistic crawl for the tests: real pages (the course's moby.html, Python's
tutorial pages from Debian's python3-doc, fortunes from Debian's fortunes-* packages, see
NOTICE) in WARC and WET files, with the trouble real crawls have: duplicates and near
duplicates across files, PII, offensive text, non-HTML payloads, error statuses, empty
and oversized pages, a corrupt record and a truncated file."""

from __future__ import annotations

import gzip
import html
import json
from pathlib import Path

from cs336_data.warc import warc_record, write_warc

FIXTURES = Path(__file__).parent / "fixtures"


def _page(title: str, body: str, lang: str = "en") -> bytes:
    paras = "".join(f"<p>{html.escape(p)}</p>" for p in body.split("\n\n"))
    return (
        f'<!DOCTYPE html><html lang="{lang}"><head><meta charset="utf-8"><title>{title}</title>'
        f"<script>var tracking = 1;</script></head><body><nav><a href='/'>Home</a></nav>"
        f"<h1>{html.escape(title)}</h1>{paras}</body></html>"
    ).encode()


def fortunes(lang: str) -> list[str]:
    return [s["text"] for s in json.loads((FIXTURES / "fortunes_sample.json").read_text())[lang]]


def _wet_record(url: str, text: str) -> bytes:
    body = text.encode()
    head = (
        "WARC/1.0\r\nWARC-Type: conversion\r\n"
        f"WARC-Record-ID: <urn:uuid:wet-{abs(hash(url)) % 10**8:08d}>\r\n"
        f"WARC-Target-URI: {url}\r\nContent-Type: text/plain\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    return head + body + b"\r\n\r\n"


PII_TEXT = (
    "Our office is open from Monday to Friday and we are always glad to answer questions "
    "about the library, its collections and the reading rooms. You can write to the "
    "librarian at jane.doe@example.org or call the front desk on (555) 123-4567 during "
    "opening hours. The catalogue server at 192.168.10.20 is only reachable from inside "
    "the building, so please use the public terminals near the entrance when you visit. "
    "We look forward to seeing you and helping you find the books you are looking for."
)
TOXIC_TEXT = (
    "You are a fucking idiot and a worthless piece of shit. Shut up, you stupid moron, "
    "nobody wants to read your crap. Go to hell, asshole, and take your fucking garbage "
    "edits with you. Everyone here thinks you are a pathetic loser and a dumb bitch who "
    "should just disappear forever. What a fucking joke you are, you ignorant bastard."
)


def build_crawl(root: Path) -> list[Path]:
    """Three WARC files, one WET file and one truncated WARC under `root`."""
    root.mkdir(parents=True, exist_ok=True)
    docs = {name: (FIXTURES / "html" / f"{name}.html").read_bytes() for name in
            ("appetite", "interpreter", "whatnow", "genindex-Q")}  # fmt: skip
    moby = (FIXTURES / "moby.html").read_bytes()
    near = docs["appetite"].replace(b"Python is simple to use", b"Python is very simple to use")
    a = [
        warc_record("https://docs.example/appetite.html", docs["appetite"]),
        warc_record("https://docs.example/interpreter.html", docs["interpreter"]),
        warc_record("https://moby.example/", moby),
        warc_record("https://pii.example/contact", _page("Contact", PII_TEXT)),
        warc_record("https://img.example/logo.png", b"\x89PNG\r\n\x1a\n" + bytes(200), "image/png"),
        warc_record("https://empty.example/", b""),
        b"WARC/1.0\r\nWARC-Type: response\r\nContent-Length: nonsense\r\n\r\n",
    ]
    b = [
        warc_record("https://mirror.example/appetite-copy.html", near),
        warc_record("https://docs.example/whatnow.html", docs["whatnow"]),
        warc_record("https://docs.example/genindex-Q.html", docs["genindex-Q"]),
        warc_record("https://rude.example/", _page("Comments", TOXIC_TEXT)),
        warc_record("https://big.example/", b"<p>" + b"word " * 400_000 + b"</p>"),
        warc_record(
            "https://latin1.example/", _page("Caf\xe9", PII_TEXT).replace(b"utf-8", b"latin-1")
        ),
    ]
    c = [warc_record(f"https://{lang}.example/{i}", _page(lang, t, lang))
         for lang in ("de", "es", "it", "ru", "pl") for i, t in enumerate(fortunes(lang)[:3])]  # fmt: skip
    c.append(warc_record("https://docs.example/interpreter-again.html", docs["interpreter"]))
    wet = [_wet_record(f"https://wet.example/{i}", t) for i, t in enumerate(fortunes("en"))]
    paths = [root / "crawl-a.warc.gz", root / "crawl-b.warc.gz", root / "crawl-c.warc"]
    write_warc(paths[0], a)
    write_warc(paths[1], b)
    paths[2].write_bytes(b"".join(c))
    paths.append(root / "crawl-d.wet.gz")
    write_warc(paths[3], wet)
    full = b"".join(gzip.compress(r, mtime=0) for r in a[:3])
    paths.append(root / "crawl-e.warc.gz")
    paths[4].write_bytes(full[: len(full) - 500])  # cut inside the third record
    return paths
