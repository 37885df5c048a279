"""The HTTP layer (`cs336_scaling.server`) over a real socket, with a toy application: order
of answers on one keep-alive connection, pipelining, blocking work off the event loop,
malformed requests, Connection: close."""

import asyncio
import json
import socket
import threading
import time

import pytest

from cs336_scaling.server import Response, serve_until


class Toy:
    """``/fast`` is answered on the event loop; ``/slow?s=..`` sleeps on a worker thread."""

    def cached(self, request):
        if request.path == "/fast":
            return Response(200, json.dumps({"fast": request.params.get("n")}).encode())
        return None

    def handle(self, request):
        if request.path == "/boom":
            raise RuntimeError("kaboom")
        time.sleep(float(request.params.get("s", 0)))
        body = {
            "slow": request.params.get("n"),
            "method": request.method,
            "body": len(request.body),
        }
        return Response(200, json.dumps(body).encode())


@pytest.fixture(scope="module")
def port():
    sock = socket.create_server(("127.0.0.1", 0))
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()
    thread = threading.Thread(
        target=lambda: loop.run_until_complete(serve_until(Toy(), sock, stop)), daemon=True
    )
    thread.start()
    yield sock.getsockname()[1]
    loop.call_soon_threadsafe(stop.set)
    thread.join(timeout=10)
    loop.close()


def _read_answers(sock, count):
    data, answers = b"", []
    while len(answers) < count:
        chunk = sock.recv(65536)
        assert chunk, "connection closed early"
        data += chunk
        while (end := data.find(b"\r\n\r\n")) >= 0:
            head = data[:end].decode()
            length = int(head.lower().split("content-length:")[1].split("\r\n")[0])
            if len(data) < end + 4 + length:
                break
            status = int(head.split(" ")[1])
            answers.append((status, json.loads(data[end + 4 : end + 4 + length]), head))
            data = data[end + 4 + length :]
    return answers


def test_pipelined_requests_are_answered_in_order(port):
    with socket.create_connection(("127.0.0.1", port)) as sock:
        requests = [
            "GET /slow?s=0.3&n=1 HTTP/1.1\r\nHost: x\r\n\r\n",
            "GET /fast?n=2 HTTP/1.1\r\nHost: x\r\n\r\n",
            'POST /slow?n=3 HTTP/1.1\r\nHost: x\r\nContent-Length: 7\r\n\r\n{"a":1}',
            "GET /fast?n=4 HTTP/1.1\r\nHost: x\r\n\r\n",
        ]
        sock.sendall("".join(requests).encode())  # all at once, before any answer
        answers = _read_answers(sock, 4)
    assert [a[1] for a in answers] == [
        {"slow": "1", "method": "GET", "body": 0},
        {"fast": "2"},
        {"slow": "3", "method": "POST", "body": 7},
        {"fast": "4"},
    ]


def test_a_blocked_connection_does_not_block_others(port):
    slow = socket.create_connection(("127.0.0.1", port))
    slow.sendall(b"GET /slow?s=1.0&n=1 HTTP/1.1\r\nHost: x\r\n\r\n")
    time.sleep(0.05)
    with socket.create_connection(("127.0.0.1", port)) as fast:
        start = time.perf_counter()
        fast.sendall(b"GET /fast?n=2 HTTP/1.1\r\nHost: x\r\n\r\n")
        assert _read_answers(fast, 1)[0][1] == {"fast": "2"}
        assert time.perf_counter() - start < 0.5
    assert _read_answers(slow, 1)[0][1]["slow"] == "1"
    slow.close()


@pytest.mark.parametrize(
    ("raw", "status", "message"),
    [
        (b"NONSENSE\r\n\r\n", 400, "malformed request line"),
        (b"GET / HTTP/1.1\r\nno colon here\r\n\r\n", 400, "malformed header line"),
        (b"GET / HTTP/1.1\r\nContent-Length: x\r\n\r\n", 400, "Content-Length must be"),
        (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", 411, "not chunked"),
        (b"HEAD / HTTP/1.1\r\n\r\n", 405, "method HEAD not allowed; use GET or POST"),
    ],
)
def test_malformed_requests_get_an_error_and_the_connection_closes(port, raw, status, message):
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(raw)
        (got, body, head) = _read_answers(sock, 1)[0]
        assert got == status and message in body["message"] and "Connection: close" in head
        assert sock.recv(10) == b""  # closed by the server


def test_a_bug_is_a_500_and_the_connection_stays_usable(port, capsys):
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(b"GET /boom HTTP/1.1\r\n\r\nGET /fast?n=1 HTTP/1.1\r\n\r\n")
        (status, body, _), (status2, body2, _) = _read_answers(sock, 2)
    assert status == 500 and body["message"] == "internal error: RuntimeError: kaboom"
    assert status2 == 200 and body2 == {"fast": "1"}


def test_connection_close_is_honoured(port):
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(b"GET /fast?n=1 HTTP/1.1\r\nConnection: close\r\n\r\n")
        (_, body, head) = _read_answers(sock, 1)[0]
        assert body == {"fast": "1"} and "Connection: close" in head
        assert sock.recv(10) == b""
