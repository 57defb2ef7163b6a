"""Tests for src/tocsin/alerting/channels/kafka.py against a real Kafka-protocol broker (tansu)."""

from __future__ import annotations

import json
import time
import uuid

import pytest

from tocsin.spec.alerting import AlertingSpec
from tocsin.alerting.dispatcher import Dispatcher
from tocsin.alerting.manager import AlertManager
from tocsin.alerting.outbox import delivery_rows
from tocsin.alerting.tables import ensure_tables
from tocsin.store.sql import Store

from tests.alerting.helpers import T0, anomaly, burst, write

pytestmark = pytest.mark.kafka
confluent_kafka = pytest.importorskip("confluent_kafka")
from confluent_kafka.admin import AdminClient, NewTopic  # noqa: E402


def consume(brokers: str, topic: str, expected: int, timeout: float = 20.0) -> list:
    consumer = confluent_kafka.Consumer({
        "bootstrap.servers": brokers, "group.id": f"t-{uuid.uuid4().hex[:8]}", "auto.offset.reset": "earliest",
        "session.timeout.ms": 6000, "enable.auto.commit": False,
    })
    consumer.subscribe([topic])
    messages, deadline = [], time.monotonic() + timeout
    try:
        while len(messages) < expected and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is not None and message.error() is None:
                messages.append(message)
    finally:
        consumer.close()
    return messages


def test_critical_alerts_are_produced_keyed_by_their_idempotency_key(tmp_path, kafka_brokers) -> None:
    topic = f"alerts-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": kafka_brokers})
    admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])[topic].result(10)
    spec = AlertingSpec.model_validate({
        "channels": {"bus": {"kind": "kafka", "bootstrap_servers": kafka_brokers, "topic": topic}},
        "routes": [{"match": {"severity": ["critical"]}, "channels": ["bus"]}],
    })
    with Store(f"sqlite:///{tmp_path / 'store.db'}") as store:
        ensure_tables(store.engine)
        manager = AlertManager(spec, "tx")
        write(store, manager, burst("card7", 30, T0, severity="critical", score=0.99999)
              + [anomaly(100, "card8", T0 + 5)])  # a warning: not routed to the topic
        dispatcher = Dispatcher(store, spec)
        try:
            assert dispatcher.drain(timeout=20)
        finally:
            dispatcher.stop()
        (row,) = delivery_rows(store, "tx")
    (message,) = consume(kafka_brokers, topic, expected=1)
    assert message.key().decode() == row["idempotency_key"]
    body = json.loads(message.value())
    assert body["entity"] == "card7" and body["count"] == 30 and body["severity"] == "critical"
