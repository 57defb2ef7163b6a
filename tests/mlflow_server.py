"""A real MLflow tracking server for the tests marked ``mlflow``, one per session (a fixture tests/conftest.py imports).

``mlflow server`` with a SQLite backend store and proxied artifacts in a temporary directory, on a free port of
127.0.0.1, in its own process group (it starts uvicorn workers) so the whole group is stopped at the end.
It answers /health after ~10-20 s. Skipped when the ``mlflow`` package is missing (``pip install 'tocsin[mlflow]'``).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import free_port

#: seconds the server may take to answer /health (it starts in ~10-20 s on two busy cores)
START_TIMEOUT = 120.0


@dataclass
class MlflowServer:
    url: str
    root: Path
    started_in: float
    process: subprocess.Popen

    def stop(self) -> None:
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        except ProcessLookupError:
            pass


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=1) as answer:
            return answer.status == 200
    except OSError:
        return False


@pytest.fixture(scope="session")
def mlflow_server() -> Iterator[MlflowServer]:
    pytest.importorskip("mlflow", reason="needs MLflow: pip install 'tocsin[mlflow]'")
    os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"  # the client side, in this process
    root = Path(tempfile.mkdtemp(prefix="tocsin-mlflow-"))
    port = free_port()
    binary = Path(sys.executable).with_name("mlflow")
    log = (root / "server.log").open("wb")
    started = time.monotonic()
    process = subprocess.Popen(
        [str(binary), "server", "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}", "--artifacts-destination",
         str(root / "artifacts"), "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env={**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"},
    )
    server = MlflowServer(f"http://127.0.0.1:{port}", root, 0.0, process)
    try:
        while not _healthy(server.url):
            if process.poll() is not None or time.monotonic() - started > START_TIMEOUT:
                raise RuntimeError(f"mlflow server did not start: {(root / 'server.log').read_text()[-2000:]}")
            time.sleep(0.2)
        server.started_in = time.monotonic() - started
        yield server
    finally:
        server.stop()
        log.close()
        shutil.rmtree(root, ignore_errors=True)
