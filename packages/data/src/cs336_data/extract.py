"""HTML bytes -> plain text: detect the encoding, decode, keep the visible text."""

from __future__ import annotations

import codecs
import re

from resiliparse.extract.html2text import extract_plain_text
from resiliparse.parse.encoding import bytes_to_str, detect_encoding

_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_:.-]+)""", re.I)


def html_encoding(html_bytes: bytes) -> str:
    """A BOM first; then UTF-8 if the bytes are valid UTF-8 (pages often declare a wrong
    legacy charset); then the page's meta charset; then resiliparse's byte statistics."""
    for bom, name in ((codecs.BOM_UTF8, "utf-8"), (b"\xff\xfe", "utf-16"), (b"\xfe\xff", "utf-16")):
        if html_bytes.startswith(bom):
            return name
    try:
        html_bytes.decode("utf-8")
        return "utf-8"
    except UnicodeDecodeError:
        pass
    declared = _CHARSET.search(html_bytes[:4096])
    if declared:
        try:
            return codecs.lookup(declared.group(1).decode("ascii")).name
        except LookupError:
            pass
    return detect_encoding(html_bytes)


def extract_text_from_html_bytes(html_bytes: bytes) -> str | None:
    """The visible text of an HTML page, or None when the page has none (empty or all markup).

    Bytes that do not decode are replaced rather than failing the page, as on real crawls."""
    if not html_bytes:
        return None
    text = extract_plain_text(bytes_to_str(html_bytes, html_encoding(html_bytes)))
    return text if text.strip() else None
