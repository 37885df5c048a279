"""A small asyncio HTTP/1.1 server: keep-alive, requests answered in order, cached answers
on the event loop, everything else on worker threads.

Why not `http.server.ThreadingHTTPServer`: a thread per connection and the GIL cap it at a
few thousand requests per second, and with 50 clients in flight the 99th percentile is
about 50 / throughput, so the latency goal (a cached answer in under 5 ms at p99 with 50
clients) needs a server that answers cached queries without a thread switch. A web
framework would do, but this is a page of stdlib code and the service needs nothing else.

The application is any object with two methods, both given a `Request`:
``cached(request)`` runs on the event loop and returns a `Response` when it can answer
at once (it must not block), or None; ``handle(request)`` runs on a worker thread and may
block (a `/loss` that trains waits there for its run).
"""

from __future__ import annotations

import asyncio
import functools
import json
import signal
import socket
import sys
import traceback
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from http import HTTPStatus
from urllib.parse import parse_qsl, urlsplit

MAX_HEAD = 64 * 1024  # request line and headers
MAX_BODY = 1024 * 1024
WORKERS = 256  # blocking requests at once (a /loss that trains holds one while it waits)


@dataclass
class Request:
    method: str
    path: str  # without the query, trailing "/" removed ("/" stays)
    params: dict[str, str]  # the query string's fields
    headers: dict[str, str]  # names lower-cased
    body: bytes = b""
    close: bool = False  # the client asked to close the connection after the answer


@dataclass
class Response:
    status: int
    body: bytes
    content_type: str = "application/json"
    extra: dict[str, str] = field(default_factory=dict)


class _BadRequest(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def serve(app, sock: socket.socket, on_stop=None) -> None:
    """Answer requests on the listening socket ``sock`` until SIGINT or SIGTERM; then stop
    accepting, call ``on_stop()`` (on a thread: it may block) and let answers in progress
    finish."""

    async def until_signalled():
        loop, stop = asyncio.get_running_loop(), asyncio.Event()

        def signalled(signum):
            print(f"stopping ({signal.Signals(signum).name})", file=sys.stderr, flush=True)
            stop.set()

        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, signalled, signum)
        await serve_until(app, sock, stop, on_stop)

    asyncio.run(until_signalled())


async def serve_until(app, sock: socket.socket, stop: asyncio.Event, on_stop=None) -> None:
    """`serve` on the running event loop until ``stop`` is set."""
    loop = asyncio.get_running_loop()
    pool = ThreadPoolExecutor(WORKERS, thread_name_prefix="request")
    server = await loop.create_server(lambda: _Connection(app, pool), sock=sock)
    await stop.wait()
    server.close()
    if on_stop is not None:
        await loop.run_in_executor(None, on_stop)
    await loop.run_in_executor(None, pool.shutdown)


class _Connection(asyncio.Protocol):
    """One client connection: parse requests as bytes arrive and answer them in order; while
    a request waits on a worker thread, reading pauses (later requests wait their turn)."""

    def __init__(self, app, pool: ThreadPoolExecutor):
        self.app, self.pool = app, pool
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None
        self.waiting = False

    def connection_made(self, transport):
        self.transport = transport

    def connection_lost(self, exc):
        self.transport = None

    def data_received(self, data: bytes):
        self.buffer += data
        if not self.waiting:
            self._next()

    def _next(self) -> None:
        while self.transport is not None and not self.transport.is_closing():
            try:
                request = _parse(self.buffer)
            except _BadRequest as e:
                return self._send(_message(e.status, str(e)), close=True)
            if request is None:
                return
            try:
                answer = self.app.cached(request)
            except Exception:
                answer = _bug()
            if answer is None:
                self.waiting = True
                self.transport.pause_reading()
                future = asyncio.get_running_loop().run_in_executor(
                    self.pool, self.app.handle, request
                )
                future.add_done_callback(lambda f, r=request: self._done(f, r))
                return
            self._send(answer, request.close)

    def _done(self, future: asyncio.Future, request: Request) -> None:
        self.waiting = False
        try:
            answer = future.result()
        except Exception:
            answer = _bug()
        if self.transport is None or self.transport.is_closing():
            return
        self._send(answer, request.close)
        if self.transport is not None and not self.transport.is_closing():
            self.transport.resume_reading()
            self._next()

    def _send(self, answer: Response, close: bool) -> None:
        headers = {
            "Content-Type": answer.content_type,
            "Content-Length": str(len(answer.body)),
            **answer.extra,
        }
        if close:
            headers["Connection"] = "close"
        head = f"HTTP/1.1 {answer.status} {HTTPStatus(answer.status).phrase}\r\n"
        head += "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        self.transport.write(head.encode("latin-1") + b"\r\n" + answer.body)
        if close:
            self.transport.close()


def _parse(buffer: bytearray) -> Request | None:
    """Take one complete request off the front of ``buffer``; None while it is incomplete."""
    while buffer[:2] == b"\r\n":  # tolerated between requests (RFC 9112 §2.2)
        del buffer[:2]
    end = buffer.find(b"\r\n\r\n")
    if end < 0:
        if len(buffer) > MAX_HEAD:
            raise _BadRequest(431, "request headers too large")
        return None
    lines = bytes(buffer[:end]).decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        raise _BadRequest(400, f"malformed request line: {lines[0][:100]!r}")
    method, target, version = parts
    if method not in ("GET", "POST"):  # (an answer to HEAD must not have a body: refuse it)
        raise _BadRequest(405, f"method {method} not allowed; use GET or POST")
    headers = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep:
            raise _BadRequest(400, f"malformed header line: {line[:100]!r}")
        headers[name.strip().lower()] = value.strip()
    if "chunked" in headers.get("transfer-encoding", "").lower():
        raise _BadRequest(411, "send the body with a Content-Length, not chunked")
    try:
        length = int(headers.get("content-length") or 0)
    except ValueError:
        raise _BadRequest(400, "Content-Length must be an integer") from None
    if not 0 <= length <= MAX_BODY:
        raise _BadRequest(413, f"request body too large ({length} bytes)")
    start = end + 4
    if len(buffer) < start + length:
        return None
    body = bytes(buffer[start : start + length])
    del buffer[: start + length]
    connection = headers.get("connection", "").lower()
    path, params = _target(target)
    return Request(
        method=method,
        path=path,
        params=dict(params),
        headers=headers,
        body=body,
        close=connection == "close" or (version == "HTTP/1.0" and connection != "keep-alive"),
    )


@functools.lru_cache(maxsize=4096)
def _target(target: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    """Path and query fields of a request target; cached, as clients repeat their queries
    (parsing the query is a third of a cached answer's time)."""
    url = urlsplit(target)
    return url.path.rstrip("/") or "/", tuple(parse_qsl(url.query))


def _message(status: int, message: str) -> Response:
    return Response(status, json.dumps({"message": message}).encode())


def _bug() -> Response:
    traceback.print_exc()  # a bug: the traceback goes to the server's log
    kind, error, _ = sys.exc_info()
    return _message(500, f"internal error: {kind.__name__}: {error}")
