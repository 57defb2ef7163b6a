"""A dispatcher SIGKILLed with deliveries pending (one of them in flight) loses nothing:
a new dispatcher resumes from the outbox, and the receiver sees every alert (duplicates only
of the in-flight one, with the same idempotency key)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from tocsin.spec.alerting import AlertingSpec
from tocsin.alerting.dispatcher import Dispatcher
from tocsin.alerting.manager import AlertManager
from tocsin.alerting.outbox import delivery_rows
from tocsin.alerting.tables import ensure_tables
from tocsin.store.sql import Store

from tests.alerting.helpers import T0, anomaly, write
from tests.alerting.receivers import HttpReceiver

ROOT = Path(__file__).resolve().parents[2]
ALERTS = 20


def test_sigkill_during_pending_deliveries_loses_nothing(tmp_path, monkeypatch) -> None:
    receiver = HttpReceiver(delay=0.15, fail_first=2).start()
    monkeypatch.setenv("TOCSIN_TEST_HOOK_KEY", "k")
    config = {
        "channels": {"hook": {"kind": "webhook", "url": receiver.url, "secret_env": "TOCSIN_TEST_HOOK_KEY"}},
        "routes": [{"channels": ["hook"]}],
        "retry": {"initial": 0.05, "max_delay": 0.2, "lease": 1},
    }
    spec = AlertingSpec.model_validate(config)
    url = f"sqlite:///{tmp_path / 'store.db'}"
    store = Store(url)
    ensure_tables(store.engine)
    write(store, AlertManager(spec, "tx"), [anomaly(i, f"card{i:02d}", T0 + i) for i in range(ALERTS)])
    child = subprocess.Popen(
        [sys.executable, "-m", "tests.alerting.dispatch_child", url, json.dumps(config)],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    try:
        assert child.stdout.readline().strip() == b"ready", child.stderr.read().decode()
        deadline = time.monotonic() + 20
        while len(receiver.calls) < 8 and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.07)  # most likely inside a request that the receiver is still answering
        child.send_signal(signal.SIGKILL)
        child.wait(5)
    finally:
        if child.poll() is None:
            child.kill()
    pending = [r for r in delivery_rows(store, "tx") if r["status"] == "pending"]
    assert len(pending) >= ALERTS - 8, "the kill should leave deliveries pending"

    resumed = Dispatcher(store, spec, poll_interval=0.05)
    assert resumed.drain(timeout=30)
    receiver.stop()
    rows = delivery_rows(store, "tx")
    assert all(r["status"] == "delivered" for r in rows) and len(rows) == ALERTS
    delivered = Counter(c.headers["idempotency-key"] for c in receiver.succeeded())
    assert set(delivered) == {r["idempotency_key"] for r in rows}  # every alert arrived
    assert sum(delivered.values()) - ALERTS <= 1  # at most the in-flight one twice, same key: the receiver dedupes
    store.close()
