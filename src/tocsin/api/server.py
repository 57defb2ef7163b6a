"""Running the app: uvicorn in the foreground (``tocsin serve``) or in a thread beside a runner (``tocsin demo``).

Both bound how long a client may hold a connection without asking for anything: a request head must be
complete within ``header_timeout`` seconds of its first byte (or of the connection, for the first one),
else the server answers 408 and closes (a silent connection just closes); an idle kept-alive connection
closes after ``keep_alive_timeout`` (uvicorn's own timer). uvicorn has no header timeout of its own, so
:func:`guarded_protocol` adds one to its httptools protocol.
"""

from __future__ import annotations

import asyncio
import functools
import gc
import socket
import threading
import time
from dataclasses import dataclass
from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from tocsin.api.logs import uvicorn_log_config

DEFAULT_HEADER_TIMEOUT = 10.0
DEFAULT_KEEP_ALIVE_TIMEOUT = 5

_REQUEST_TIMEOUT = b"HTTP/1.1 408 Request Timeout\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"


class HeaderTimeoutProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a bound on receiving each request head (slowloris)."""

    header_timeout: float = DEFAULT_HEADER_TIMEOUT

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self._head_timer: asyncio.TimerHandle | None = None
        self._head_started = False
        super().connection_made(transport)
        self._arm_head_timer()  # a connection that never sends a byte is bounded too

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._head_started = True
        if self._head_timer is None:  # the first byte of a later request on a kept-alive connection
            self._arm_head_timer()

    def on_headers_complete(self) -> None:
        self._cancel_head_timer()
        self._head_started = False
        super().on_headers_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_head_timer()
        super().connection_lost(exc)

    def _arm_head_timer(self) -> None:
        self._head_timer = self.loop.call_later(self.header_timeout, self._head_timed_out)

    def _cancel_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self.transport.is_closing():
            return
        if self.cycle is not None and not self.cycle.response_complete:
            self.cycle.keep_alive = False  # a slow head pipelined behind a running request: close after its answer
            return
        if self._head_started:
            self.transport.write(_REQUEST_TIMEOUT)
        self.transport.close()


@functools.cache
def guarded_protocol(header_timeout: float) -> type[HeaderTimeoutProtocol]:
    """The protocol class to give ``uvicorn.Config(http=...)`` for a ``header_timeout`` in seconds."""
    if not header_timeout > 0:
        raise ValueError(f"header_timeout: must be a positive number of seconds, got {header_timeout!r}")
    return type("HeaderTimeoutProtocol", (HeaderTimeoutProtocol,), {"header_timeout": float(header_timeout)})


def _settings(log_level: str, header_timeout: float, keep_alive_timeout: int) -> dict[str, Any]:
    return {"workers": 1, "log_config": uvicorn_log_config(log_level), "access_log": False,
            "http": guarded_protocol(header_timeout), "timeout_keep_alive": keep_alive_timeout}


@dataclass
class ServerThread:
    """A uvicorn server running in a daemon thread; ``stop()`` shuts it down gracefully."""

    server: uvicorn.Server
    thread: threading.Thread
    host: str
    port: int

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def stop(self, timeout: float = 10.0) -> None:
        self.server.should_exit = True
        self.thread.join(timeout)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def start_in_thread(app: Any, host: str = "127.0.0.1", port: int = 0, log_level: str = "warning", timeout: float = 30.0,
                    header_timeout: float = DEFAULT_HEADER_TIMEOUT, keep_alive_timeout: int = DEFAULT_KEEP_ALIVE_TIMEOUT) -> ServerThread:
    """Serve ``app`` on ``host:port`` (0: a free port) in a thread; returns once it accepts connections."""
    port = port or free_port(host)
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, **_settings(log_level, header_timeout, keep_alive_timeout)))
    # uvicorn installs no signal handlers outside the main thread: the owner stops it with stop()
    thread = threading.Thread(target=server.run, name=f"tocsin-api-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if not thread.is_alive():
            raise RuntimeError(f"the API server on {host}:{port} did not start (port in use?)")
        if time.monotonic() > deadline:
            raise TimeoutError(f"the API server on {host}:{port} did not start within {timeout:.0f} s")
        time.sleep(0.02)
    return ServerThread(server=server, thread=thread, host=host, port=port)


def run_foreground(app: Any, host: str, port: int, log_level: str = "info", header_timeout: float = DEFAULT_HEADER_TIMEOUT,
                   keep_alive_timeout: int = DEFAULT_KEEP_ALIVE_TIMEOUT) -> None:
    """Serve until SIGINT/SIGTERM with one worker (the pipeline's state lives in this process)."""
    gc.collect()
    gc.freeze()  # long-lived start-up objects out of the cyclic GC's full passes (shorter latency tails)
    uvicorn.run(app, host=host, port=port, **_settings(log_level, header_timeout, keep_alive_timeout))
