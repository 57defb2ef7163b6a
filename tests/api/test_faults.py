"""A failing store during mixed ``/v1/score`` and ``/v1/events`` traffic loses nothing and promises nothing
it did not do.

Two faults, each for 10 s, against a real ``tocsin serve``: PostgreSQL made read-only (as after a
fail-over to a replica), and the SQLite store's files deleted, then restored. Then SIGTERM (the queue
drains) and a restart. In the end: every event answered 2xx is stored exactly once with the score an
uninterrupted run over the accepted requests gives; a 200 from ``/v1/score`` carried exactly the scores
that were stored; ``/health`` named the store while it failed and recovered by itself.

Once, with the database read-only for 8 s, ``/v1/score`` answered 500 after folding the events into
model state, the queue thread died, ``/v1/events`` kept answering 202 for 720 events never processed,
``/health`` stayed 503 after the store came back, and SIGTERM dropped 710 queued events without a word.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import psycopg
import pytest
import yaml
from sqlalchemy import make_url, text

from tocsin.api.server import free_port
from tocsin.engine.pipeline import Pipeline
from tocsin.simulate import TransactionSimulator
from tocsin.spec import parse_spec
from tocsin.store.sql import Store
from tests.api.conftest import as_records, spec_dict

pytestmark = pytest.mark.slow

FAULT_SECONDS = 10.0
BATCH = 25


def start_server(spec_path: Path, port: int, log: Path) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOCSIN_")}
    with open(log, "ab") as out:
        return subprocess.Popen([sys.executable, "-m", "tocsin.cli.main", "serve", str(spec_path), "--port", str(port),
                                 "--no-auth", "--log-level", "warning"], stdout=out, stderr=subprocess.STDOUT, env=env)


def wait_ready(url: str, process: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, "the server exited"
        try:
            httpx.get(f"{url}/health", timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.05)
    raise TimeoutError("the server did not start")


class ReadOnlyPostgres:
    """Make the store's database read-only (new transactions refuse writes), then writable again."""

    def __init__(self, store_url: str) -> None:
        url = make_url(store_url)
        self.db, self.args = url.database, {"host": url.host, "port": url.port, "user": url.username, "dbname": "postgres"}

    def _set(self, read_only: bool) -> None:
        with psycopg.connect(**self.args, autocommit=True) as conn:
            value = "on" if read_only else "off"
            conn.execute(f'ALTER DATABASE "{self.db}" SET default_transaction_read_only = {value}')
            # sessions take a database's defaults when they start: end the open ones
            conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
                         (self.db,))

    def start(self) -> None:
        self._set(True)

    def end(self) -> None:
        self._set(False)


class DeletedSqlite:
    """Take the SQLite store's files away (as an operator's mistake would), then put them back."""

    def __init__(self, store_url: str, aside: Path) -> None:
        self.path = Path(make_url(store_url).database)
        self.aside = aside
        aside.mkdir()

    def start(self) -> None:
        for name in (self.path.name, self.path.name + "-wal", self.path.name + "-shm"):
            if (self.path.parent / name).exists():
                shutil.move(self.path.parent / name, self.aside / name)

    def end(self) -> None:
        for item in self.aside.iterdir():
            shutil.move(item, self.path.parent / item.name)


@pytest.mark.parametrize("fault", ["postgres-read-only", "sqlite-deleted"])
def test_a_failing_store_loses_nothing_and_promises_nothing(tmp_path, fault, request) -> None:
    if fault == "postgres-read-only":
        store_url = request.getfixturevalue("pg_url")
    else:
        store_url = f"sqlite:///{tmp_path / 'store.db'}"
    data = spec_dict(store_url, str(tmp_path / "checkpoints"))
    data["detector"].update({"warmup_events": 1_000, "refit_every": 2_000, "train_window": 2_000})
    data["calibration"]["update_every"] = 500
    data["store"]["scored_events"] = True
    data["checkpoint"]["interval"] = "500ms"
    spec_path = tmp_path / "spec.yaml"
    spec_path.write_text(yaml.safe_dump(data))
    simulator = TransactionSimulator(users=300, merchants=2_000, fraud_rate=0.02, warmup_days=0.5, seed=9)
    records = as_records(simulator.generate(24_000))
    batches = [records[i : i + BATCH] for i in range(0, len(records), BATCH)]
    injector = ReadOnlyPostgres(store_url) if fault == "postgres-read-only" else DeletedSqlite(store_url, tmp_path / "aside")

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = tmp_path / "server.log"
    server = start_server(spec_path, port, log)
    wait_ready(url, server)
    accepted: dict[int, int] = {}  # journal seq -> batch index
    sync_scores: dict[str, float] = {}  # what 200 answers said
    refused = 0
    done_during_fault = 0  # 2xx answers to requests sent while the store could not take writes
    health_during: list[tuple[int, str]] = []
    stop_health = threading.Event()

    def watch_health() -> None:
        with httpx.Client(base_url=url, timeout=5) as watcher:
            while not stop_health.is_set():
                answer = watcher.get("/health")
                health_during.append((answer.status_code, answer.json()["components"]["store"]["status"]))
                time.sleep(0.2)

    client = httpx.Client(base_url=url, timeout=30)
    fault_at = time.monotonic() + 3.0
    fault_until = fault_at + FAULT_SECONDS
    faulting = injector_started = False
    health_thread = None
    try:
        for index, batch in enumerate(batches):
            now = time.monotonic()
            if now > fault_until + 4.0:
                break  # enough traffic after the fault
            time.sleep(0.01)
            if not faulting and fault_at <= now < fault_until:
                injector.start()
                faulting = injector_started = True
                health_thread = threading.Thread(target=watch_health, daemon=True)
                health_thread.start()
            elif faulting and now >= fault_until:
                injector.end()
                faulting = False
            in_fault = faulting and fault_at + 0.5 <= now <= fault_until - 0.5
            if index % 3 == 0:  # a synchronous request
                answer = client.post("/v1/score", json={"events": batch})
                done_during_fault += in_fault and answer.status_code == 200
                if answer.status_code == 200:
                    body = answer.json()
                    accepted[body["position"]] = index
                    sync_scores.update({r["id"]: r["score"] for r in body["results"] if r["status"] == "scored"})
                    continue
            else:
                answer = client.post("/v1/events", json={"events": batch})
                done_during_fault += in_fault and answer.status_code == 202
                if answer.status_code == 202:
                    accepted[answer.json()["position"]] = index
                    continue
            assert answer.status_code == 503, answer.text  # never 500, never a 2xx for undone work
            refused += 1
            journaled = re.search(r"journaled \(entry (\d+)\)", answer.json()["detail"])
            if journaled:  # accepted and kept: stored once the store is back (the detail says not to resend)
                accepted[int(journaled.group(1))] = index
            time.sleep(0.05)
        if faulting:
            injector.end()
        deadline = time.monotonic() + 60
        while (client.get("/health").status_code != 200 or client.get("/v1/stats").json()["queue_depth"]) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert client.get("/health").status_code == 200, "recovers by itself"
    finally:
        stop_health.set()
        if health_thread is not None:
            health_thread.join(10)
        client.close()
        server.send_signal(signal.SIGTERM)
        assert server.wait(60) in (0, -signal.SIGTERM)  # uvicorn re-raises the signal once it has shut down
    assert refused > 0 and injector_started, "the fault was felt"
    assert done_during_fault == 0, "no 2xx while the store could not take writes"
    assert any(code == 503 and store == "down" for code, store in health_during), "/health named the store while it failed"

    # a restart replays nothing twice (and SIGTERM left nothing behind)
    server = start_server(spec_path, port, log)
    wait_ready(url, server)
    server.send_signal(signal.SIGTERM)
    assert server.wait(60) in (0, -signal.SIGTERM)

    assert sorted(accepted) == list(range(1, len(accepted) + 1)), "journal seqs are consecutive: nothing journaled was missed"
    ordered = [r for seq in sorted(accepted) for r in batches[accepted[seq]]]
    reference = Pipeline(parse_spec(data)).process_records(ordered, source="api")
    expected = {str(reference.events.ids[i]): float(reference.score[i]) for i in np.flatnonzero(reference.scored)}
    store = Store(store_url)
    rows = store.fetch(text("SELECT event_id, score FROM scored_events WHERE pipeline = 'transactions'"))
    stored = {row["event_id"]: row["score"] for row in rows}
    assert len(rows) == len(stored), "no event stored twice"
    assert stored.keys() == expected.keys(), ("every accepted event stored, and nothing else", sorted(set(stored) - set(expected))[:5], sorted(set(expected) - set(stored))[:5], len(stored), len(expected))
    np.testing.assert_array_equal([stored[k] for k in expected], [expected[k] for k in expected])
    assert sync_scores and all(stored[k] == v for k, v in sync_scores.items()), "a 200 answered what was stored"
    log_text = log.read_text()
    assert "Traceback" not in log_text, log_text[-3000:]
