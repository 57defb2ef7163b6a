"""Tests for src/tocsin/alerting/outbox.py: alerts, details and deliveries in one transaction, idempotent on replay."""

from __future__ import annotations

import pytest

from tocsin.spec.alerting import AlertingSpec
from tocsin.alerting.manager import AlertManager
from tocsin.alerting.outbox import alert_documents, delivery_rows
from tocsin.alerting.tables import ensure_tables
from tocsin.store.sql import Store

from tests.alerting.helpers import T0, burst, write

SPEC = AlertingSpec.model_validate({
    "channels": {"hook": {"kind": "webhook", "url": "http://127.0.0.1:9/h"}, "db": {"kind": "store"}},
    "routes": [{"channels": ["hook", "db"]}],
    "budget": {"per_day": 50},
})


@pytest.fixture
def store(tmp_path):
    with Store(f"sqlite:///{tmp_path / 'store.db'}") as s:
        ensure_tables(s.engine)
        yield s


def test_an_alert_is_written_with_its_details_and_pending_deliveries(store) -> None:
    manager = AlertManager(SPEC, "tx")
    write(store, manager, burst("card7", 10, T0))
    write(store, manager, burst("card7", 10, T0 + 20, first_id=10))
    (doc,) = alert_documents(store, "tx")
    assert doc["count"] == 20 and doc["pattern"] == "rate" and doc["status"] == "open"
    assert doc["budget_cutoff"] == pytest.approx(0.999) and doc["window_start"] == T0
    assert {(d["channel"], d["status"]) for d in doc["deliveries"]} == {("hook", "pending"), ("db", "delivered")}
    assert doc["deliveries"][0]["idempotency_key"] == f"tx/{doc['alert_key']}/hook/open"


def test_replaying_a_batch_rewrites_the_same_rows(store) -> None:
    manager = AlertManager(SPEC, "tx")
    write(store, manager, burst("card7", 10, T0))
    saved = manager.state_dict()
    second = burst("card7", 10, T0 + 20, first_id=10)
    write(store, manager, second)
    before = alert_documents(store, "tx")
    replay = AlertManager(SPEC, "tx")
    replay.load_state_dict(saved)
    write(store, replay, second)  # the crash replays the batch after the checkpoint
    after = alert_documents(store, "tx")
    strip = lambda docs: [{k: v for k, v in d.items() if k != "updated_at"} for d in docs]  # noqa: E731
    assert strip(after) == strip(before) and after[0]["count"] == 20
    assert len(delivery_rows(store, "tx")) == 2


def test_an_acknowledgement_survives_later_updates_and_auto_resolve_ends_it(store) -> None:
    manager = AlertManager(SPEC, "tx")
    write(store, manager, burst("card7", 3, T0))
    (doc,) = alert_documents(store, "tx")
    assert store.set_alert_status("tx", doc["id"], "acknowledged")
    write(store, manager, burst("card7", 3, T0 + 100, first_id=3))
    (doc,) = alert_documents(store, "tx")
    assert doc["status"] == "acknowledged" and doc["count"] == 6
    write(store, manager, [], watermark=T0 + 104 + 1800)
    (doc,) = alert_documents(store, "tx")
    assert doc["status"] == "resolved" and doc["resolved_reason"] == "quiet"
    # the API's reads still see the alert (same table, same columns)
    assert store.alerts(pipeline="tx")[0]["alert_key"] == doc["alert_key"]


def test_a_failed_transaction_leaves_neither_alert_nor_delivery(store) -> None:
    from tocsin.alerting.outbox import write_changes

    manager = AlertManager(SPEC, "tx")
    changes = manager.observe(burst("card7", 3, T0), watermark=T0 + 4)
    with pytest.raises(RuntimeError):
        with store.engine.begin() as conn:
            write_changes(conn, "tx", changes)
            raise RuntimeError("crash after the outbox write, before commit")
    assert alert_documents(store, "tx") == [] and delivery_rows(store, "tx") == []
