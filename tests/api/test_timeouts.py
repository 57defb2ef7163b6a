"""Read timeouts with real sockets against a real server: a request head must be complete within
``header_timeout`` (slowloris), an idle keep-alive connection closes after ``keep_alive_timeout``, and
neither touches a request whose head arrived in time (a slow answer, a body being uploaded)."""

from __future__ import annotations

import socket
import time

import pytest

from tocsin.api import create_app
from tocsin.api.server import start_in_thread

HEAD_TIMEOUT = 1.0


@pytest.fixture
def running(spec, auth, warm_pipeline):
    server = start_in_thread(create_app(spec, auth, pipeline=warm_pipeline), header_timeout=HEAD_TIMEOUT, keep_alive_timeout=1)
    yield server
    server.stop()


def connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.settimeout(10)
    return sock


def closed_after(sock: socket.socket, dribble: bytes = b"", every: float = 0.2, limit: float = 8.0) -> tuple[float, bytes]:
    """Send ``dribble`` a byte at a time every ``every`` s (slowloris) until the server closes the
    connection; (seconds it took, what the server sent)."""
    started = time.monotonic()
    received = b""
    sock.setblocking(False)
    index = 0
    while time.monotonic() - started < limit:
        try:
            chunk = sock.recv(4096)
            if not chunk:
                return time.monotonic() - started, received
            received += chunk
        except BlockingIOError:
            pass
        except ConnectionResetError:
            return time.monotonic() - started, received
        if index < len(dribble):
            try:
                sock.send(dribble[index : index + 1])
            except (BrokenPipeError, ConnectionResetError):
                return time.monotonic() - started, received
            index += 1
        time.sleep(every)
    raise AssertionError(f"the server kept the connection open for {limit} s")


def test_a_slow_request_head_is_cut_off(running) -> None:
    sock = connect(running.port)
    slow = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n" + b"X-Padding: " + b"a" * 200 + b"\r\n\r\n"
    took, answer = closed_after(sock, slow)
    assert HEAD_TIMEOUT - 0.1 <= took <= HEAD_TIMEOUT + 1.0
    assert answer.startswith(b"HTTP/1.1 408"), answer
    sock.close()


def test_a_silent_connection_is_closed(running) -> None:
    sock = connect(running.port)
    took, answer = closed_after(sock)
    assert took <= HEAD_TIMEOUT + 1.0 and answer == b"", "nothing was asked: closed without an answer"
    sock.close()


def test_each_request_on_a_kept_alive_connection_gets_its_own_bound(running) -> None:
    sock = connect(running.port)
    request = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    for _ in range(3):  # complete heads keep being answered on the same connection
        sock.sendall(request)
        assert sock.recv(65536).startswith(b"HTTP/1.1 200")
        time.sleep(0.6)  # longer than half the bound, so a bound per connection would have fired
    took, answer = closed_after(sock, request[:-4])  # the next head never completes
    assert took <= HEAD_TIMEOUT + 1.0 and answer.startswith(b"HTTP/1.1 408")
    sock.close()


def test_an_idle_kept_alive_connection_is_closed(running) -> None:
    sock = connect(running.port)
    sock.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    assert sock.recv(65536).startswith(b"HTTP/1.1 200")
    took, answer = closed_after(sock)
    assert took <= 2.0 and answer == b""
    sock.close()


def test_a_body_uploaded_after_a_timely_head_is_not_cut_off(running, keys, records) -> None:
    import json

    body = json.dumps({"events": records[3_000:3_010]}).encode()
    head = (f"POST /v1/score HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nX-API-Key: {keys.analyst}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode()
    sock = connect(running.port)
    sock.sendall(head)
    for start in range(0, len(body), len(body) // 3 + 1):  # the body over 1.5 s: longer than the head's bound
        time.sleep(0.5)
        sock.sendall(body[start : start + len(body) // 3 + 1])
    answer = sock.recv(65536)
    assert answer.startswith(b"HTTP/1.1 200"), answer[:300]
    sock.close()


def test_the_protocol_is_configurable() -> None:
    from tocsin.api.server import guarded_protocol

    protocol = guarded_protocol(3.5)
    assert protocol.header_timeout == 3.5 and guarded_protocol(3.5) is protocol
    with pytest.raises(ValueError, match="header_timeout"):
        guarded_protocol(0)
