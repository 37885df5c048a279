"""Reading WARC/WET files (streaming, gzip-aware, with fastwarc) and writing small ones.

`iter_pages` yields one `Page` per HTTP response (WARC) or conversion record (WET);
records that cannot be used are yielded as `Page(skip=reason)` so the caller counts them."""

from __future__ import annotations

import gzip
import os
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from fastwarc.warc import ArchiveIterator, WarcRecordType

HTML_TYPES = ("text/html", "application/xhtml+xml")


@dataclass
class Page:
    url: str = ""
    record_id: str = ""
    date: str = ""
    payload: bytes = b""
    is_text: bool = False  # WET: the payload is already plain text
    skip: str | None = None


def iter_pages(path: str | os.PathLike, max_bytes: int = 10_000_000) -> Iterator[Page]:
    types = WarcRecordType.response | WarcRecordType.conversion | WarcRecordType.resource
    records = ArchiveIterator(
        os.fspath(path), record_types=types, parse_http=True, quirks_mode=True, fsspec_args=False
    )
    for record in records:
        headers = record.headers
        page = Page(
            url=headers.get("WARC-Target-URI", ""),
            record_id=headers.get("WARC-Record-ID", ""),
            date=headers.get("WARC-Date", ""),
        )
        if record.content_length > max_bytes:
            page.skip = "too_large"
        elif record.record_type == WarcRecordType.conversion:
            page.is_text, page.payload = True, record.reader.read()
        elif record.is_http:
            page.skip = _http_problem(record)
            if page.skip is None:
                page.payload = record.reader.read()
                declared = record.http_headers.get("Content-Length", "")
                if declared.isdigit() and len(page.payload) < int(declared):
                    page.skip = "truncated"  # the file ends inside this record
        else:  # a resource record: a file stored as is
            ctype = headers.get("Content-Type", "")
            page.skip = None if ctype.startswith(HTML_TYPES) else "not_html"
            page.payload = record.reader.read() if page.skip is None else b""
        if page.skip is None and not page.payload.strip():
            page.skip = "empty"
        yield page


def _http_problem(record) -> str | None:
    status = record.http_headers.status_code if record.http_headers else 0
    if status != 200:
        return "http_status"
    ctype = (record.http_content_type or "").lower()
    return None if ctype.startswith(HTML_TYPES) else "not_html"


def warc_record(url: str, body: bytes, content_type: str = "text/html; charset=utf-8") -> bytes:
    """One WARC/1.0 response record holding an HTTP 200 response with `body`."""
    http = (
        f"HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    head = (
        "WARC/1.0\r\nWARC-Type: response\r\n"
        f"WARC-Record-ID: <urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, url)}>\r\n"
        "WARC-Date: 2025-01-01T00:00:00Z\r\n"
        f"WARC-Target-URI: {url}\r\n"
        "Content-Type: application/http; msgtype=response\r\n"
        f"Content-Length: {len(http)}\r\n\r\n"
    ).encode()
    return head + http + b"\r\n\r\n"


def write_warc(path: str | os.PathLike, records: Iterable[bytes]) -> None:
    """A .warc.gz with one gzip member per record, as Common Crawl writes them."""
    with open(path, "wb") as f:
        for record in records:
            f.write(gzip.compress(record, compresslevel=6, mtime=0))
