"""Tests for src/tocsin/alerting/channels/webhook.py and dispatcher.py against a real local HTTP receiver."""

from __future__ import annotations

import time

import pytest

from tocsin.alerting.channels import build_channels, verify_signature
from tocsin.spec.alerting import AlertingSpec
from tocsin.alerting.dispatcher import Dispatcher
from tocsin.alerting.manager import AlertManager
from tocsin.alerting.outbox import alert_documents, delivery_rows
from tocsin.alerting.tables import ensure_tables
from tocsin.store.sql import Store

from tests.alerting.helpers import T0, anomaly, burst, write
from tests.alerting.receivers import HttpReceiver

KEY = "whsec-test-0123456789"
FAST_RETRY = {"initial": 0.05, "multiplier": 2, "max_delay": 0.2, "jitter": 0.5, "lease": 2}


def spec_for(url: str, kind: str = "webhook", **extra) -> AlertingSpec:
    return AlertingSpec.model_validate({
        "channels": {"hook": {"kind": kind, "url": url, "secret_env": "TOCSIN_TEST_HOOK_KEY"}},
        "routes": [{"match": {"severity": ["warning", "critical"]}, "channels": ["hook"]}],
        "retry": FAST_RETRY,
        **extra,
    })


@pytest.fixture
def store(tmp_path):
    with Store(f"sqlite:///{tmp_path / 'store.db'}") as s:
        ensure_tables(s.engine)
        yield s


@pytest.fixture
def receiver():
    r = HttpReceiver().start()
    yield r
    r.stop()


@pytest.fixture(autouse=True)
def hook_key(monkeypatch):
    monkeypatch.setenv("TOCSIN_TEST_HOOK_KEY", KEY)


def test_retries_until_delivered_with_one_idempotency_key_and_a_valid_signature(store, receiver) -> None:
    receiver.fail_first = 3
    spec = spec_for(receiver.url)
    write(store, AlertManager(spec, "tx"), burst("card7", 50, T0))
    dispatcher = Dispatcher(store, spec, seed=1)
    assert dispatcher.drain(timeout=10)
    assert len(receiver.calls) == 4  # three 503s, then 200
    assert len({c.headers["idempotency-key"] for c in receiver.calls}) == 1
    for call in receiver.calls:
        assert verify_signature(KEY.encode(), call.body, call.headers["x-tocsin-signature"])
    assert not verify_signature(b"wrong key", receiver.calls[-1].body, receiver.calls[-1].headers["x-tocsin-signature"])
    body = receiver.calls[-1].json
    assert body["count"] == 50 and body["entity"] == "card7" and body["pattern"] == "rate" and body["notification"] == "open"
    (row,) = delivery_rows(store, "tx")
    assert row["status"] == "delivered" and row["attempts"] == 4 and row["last_error"] is None
    (doc,) = alert_documents(store, "tx")
    assert doc["deliveries"][0]["status"] == "delivered"


def test_backoff_grows_between_attempts(store, receiver) -> None:
    receiver.fail_first = 4
    spec = spec_for(receiver.url, retry={**FAST_RETRY, "jitter": 0, "initial": 0.1, "max_delay": 1})
    write(store, AlertManager(spec, "tx"), burst("c", 2, T0))
    dispatcher = Dispatcher(store, spec, poll_interval=0.01)
    started = time.monotonic()
    assert dispatcher.drain(timeout=10)
    # waits of 0.1, 0.2, 0.4, 0.8 s between the five attempts
    assert delivery_rows(store, "tx")[0]["attempts"] == 5
    assert 1.5 <= time.monotonic() - started < 4


def test_an_outage_delays_delivery_and_loses_nothing(store, tmp_path) -> None:
    receiver = HttpReceiver().start()
    url = receiver.url
    receiver.stop()  # the endpoint is down: connections are refused
    spec = spec_for(url)
    manager = AlertManager(spec, "tx")
    write(store, manager, [anomaly(i, f"card{i}", T0 + i) for i in range(5)])
    dispatcher = Dispatcher(store, spec, seed=2)
    for _ in range(3):
        dispatcher.run_once()
    rows = delivery_rows(store, "tx")
    assert len(rows) == 5 and all(r["status"] == "pending" for r in rows)
    assert any("ConnectError" in (r["last_error"] or "") for r in rows)
    # the channel is paused after a failure: one attempt per backoff step, not one per pending alert
    assert sum(r["attempts"] for r in rows) <= 3
    back = HttpReceiver(port=int(url.rsplit(":", 1)[1].split("/")[0])).start()  # the endpoint comes back
    try:
        assert dispatcher.drain(timeout=10)
        assert sorted(c.json["entity"] for c in back.calls) == [f"card{i}" for i in range(5)]
    finally:
        back.stop()


def test_a_4xx_is_a_permanent_failure_shown_on_the_alert(store, receiver) -> None:
    receiver.fail_first, receiver.fail_status = 100, 400
    spec = spec_for(receiver.url)
    write(store, AlertManager(spec, "tx"), burst("c", 2, T0))
    Dispatcher(store, spec).drain(timeout=2)
    (doc,) = alert_documents(store, "tx")
    (delivery,) = doc["deliveries"]
    assert delivery["status"] == "failed" and delivery["attempts"] == 1 and "HTTP 400" in delivery["last_error"]


def test_slack_payload(store, receiver) -> None:
    spec = spec_for(receiver.url, kind="slack")
    write(store, AlertManager(spec, "tx"), burst("card7", 12, T0, severity="critical", score=0.99999))
    assert Dispatcher(store, spec).drain(timeout=5)
    body = receiver.calls[0].json
    assert body["text"].startswith("[critical] tx: card7 — rate, 12 anomalies")
    assert body["blocks"][0]["type"] == "section" and any("Anomalies:* 12" in f["text"] for f in body["blocks"][1]["fields"])
    assert verify_signature(KEY.encode(), receiver.calls[0].body, receiver.calls[0].headers["x-tocsin-signature"])


def test_a_missing_secret_names_the_field(monkeypatch) -> None:
    monkeypatch.delenv("TOCSIN_TEST_HOOK_KEY")
    with pytest.raises(ValueError, match=r"alerting.channels.hook.secret_env: environment variable 'TOCSIN_TEST_HOOK_KEY' is not set"):
        build_channels(spec_for("http://127.0.0.1:9/h"))


def test_group_wait_lets_the_first_delivery_carry_the_grouped_count(store, receiver) -> None:
    spec = spec_for(receiver.url, group_wait="0.3s")
    manager = AlertManager(spec, "tx")
    write(store, manager, burst("card7", 10, T0))
    dispatcher = Dispatcher(store, spec)
    assert dispatcher.run_once() == 0  # not due yet
    write(store, manager, burst("card7", 490, T0 + 20, first_id=10))
    assert dispatcher.drain(timeout=5)
    assert [c.json["count"] for c in receiver.calls] == [500]
