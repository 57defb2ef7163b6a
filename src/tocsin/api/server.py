"""Running the app: uvicorn in the foreground (``tocsin serve``) or in a thread beside a runner (``tocsin demo``)."""

from __future__ import annotations

import gc
import socket
import threading
import time
from dataclasses import dataclass
from typing import Any

import uvicorn

from tocsin.api.logs import uvicorn_log_config


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


def start_in_thread(app: Any, host: str = "127.0.0.1", port: int = 0, log_level: str = "warning", timeout: float = 30.0) -> ServerThread:
    """Serve ``app`` on ``host:port`` (0: a free port) in a thread; returns once it accepts connections."""
    port = port or free_port(host)
    config = uvicorn.Config(app, host=host, port=port, log_config=uvicorn_log_config(log_level), access_log=False, workers=1)
    server = uvicorn.Server(config)
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


def run_foreground(app: Any, host: str, port: int, log_level: str = "info") -> None:
    """Serve until SIGINT/SIGTERM with one worker (the pipeline's state lives in this process)."""
    gc.collect()
    gc.freeze()  # long-lived start-up objects out of the cyclic GC's full passes (shorter latency tails)
    uvicorn.run(app, host=host, port=port, workers=1, log_config=uvicorn_log_config(log_level), access_log=False)
