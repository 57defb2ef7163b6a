"""Grouped alerts on the Kafka worker: a card-testing burst becomes one alert carrying its count, in the store
and on the alerts topic; the worker groups, budgets and routes exactly as the embedded runner; a replay cut
into other batches than the first run suppresses what the topic already has and keeps its counts growing."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest

from tocsin.alerting.outbox import alert_documents, delivery_rows
from tocsin.batch import EventBatch
from tocsin.checkpoint.local import LocalCheckpointStore
from tocsin.engine.runner import Runner
from tocsin.engine.worker import KafkaWorker
from tocsin.kafka.admin import read_topic
from tocsin.spec import StreamSettings
from tocsin.kafka.producer import event_lines, events_producer
from tocsin.kafka.sinks import OFFSET_HEADER, PARTITION_HEADER, SOURCE_TS_HEADER
from tocsin.spec import parse_spec
from tocsin.store.sql import Store

from ..alerting.receivers import HttpReceiver
from ..alerting.helpers import BURST, BatchSource, card_testing_stream
from .helpers import (
    alert_records,
    alert_summary,
    check_topic_matches_store,
    kafka_source,
    simulator,
    small_spec_data,
    stored_alerts,
    topics,
    worker_spec,
)
from .test_worker import reference_run

pytestmark = pytest.mark.kafka

#: as in the embedded runner's card-testing test: 20 anomalies in one alert make it critical
ALERTING = {
    "window": "1h", "quiet_period": "30m",
    "rules": [{"min_count": 20, "severity": "critical"}],
    "channels": {"db": {"kind": "store"}},
    "routes": [{"match": {"severity": ["critical"]}, "channels": ["db"]}],
}


@pytest.fixture(scope="module")
def stream():
    return card_testing_stream()


def publish(brokers: str, topic: str, events) -> None:
    """The events as JSON records keyed by card, like ``tocsin produce`` (a card's events share a partition)."""
    lines, keys = event_lines(events)
    producer = events_producer({"bootstrap.servers": brokers})
    for key, line in zip(keys, lines):
        producer.produce(topic, line, key)
    assert producer.flush(30) == 0


def input_records(brokers: str, topic: str) -> dict[tuple[int, int], Any]:
    return {(m.partition(), m.offset()): m for m in read_topic({"bootstrap.servers": brokers}, topic)}


def test_a_card_testing_burst_in_one_partition_is_one_alert_with_the_count_in_the_store_and_on_the_topic(
        tmp_path, kafka_brokers, stream) -> None:
    events, card = stream
    data = small_spec_data(f"sqlite:///{tmp_path}/store.db", tmp_path / "ck")
    receiver = HttpReceiver().start()
    data["alerting"] = {**ALERTING, "channels": {**ALERTING["channels"], "hook": {"kind": "webhook", "url": receiver.url}},
                        "routes": [{"match": {"severity": ["critical"]}, "channels": ["db", "hook"]}]}
    names = topics(kafka_brokers, partitions=2)
    publish(kafka_brokers, names["topic"], events)
    worker = KafkaWorker(worker_spec(data, kafka_source(kafka_brokers, names), StreamSettings(checkpoint_url=str(tmp_path / "ck"))),
                         idle_exit=3.0)
    stats = worker.run()
    assert stats.events == len(events)

    store = Store(data["store"]["url"])
    flagged = {a["event_id"]: a for a in store.anomalies(pipeline="transactions", entity=card, limit=10_000)}
    assert len([e for e in flagged if e.startswith("ct")]) >= 0.9 * BURST  # the detector sees the attack
    alerts = stored_alerts(data["store"]["url"])
    (alert,) = [a for a in alerts.values() if a["entity"] == card]
    inside = [e for e, a in flagged.items() if alert["window_start"] <= a["event_time"] <= alert["last_event_time"]]
    assert alert["count"] == len(inside) >= 0.9 * BURST, "one alert, counting every anomaly of the card in its window"
    assert alert["severity"] == "critical"
    assert len(alerts) < stats.anomalies / 2

    # the alerts topic: the story of that one alert, consistent with the store
    records = check_topic_matches_store(alert_records(kafka_brokers, names["alerts_topic"]), alerts)
    story = records[alert["alert_key"]]
    assert 1 <= len(story) < alert["count"] / 10, "a record per change (per batch), not per anomaly"
    assert [r.value["change"] for r in story][0] == "opened"
    assert story[-1].value["count"] == alert["count"] and story[-1].value["severity"] == "critical"
    inputs = input_records(kafka_brokers, names["topic"])
    partitions = {int(r.headers[PARTITION_HEADER]) for r in story}
    assert len(partitions) == 1 and {p for (p, _), m in inputs.items() if m.key() == card.encode()} == partitions
    for record in story:
        if record.value["change"] == "resolved":
            continue
        source = inputs[(int(record.headers[PARTITION_HEADER]), int(record.headers[OFFSET_HEADER]))]
        # the headers name the anomaly that caused the change: its input offset and producer timestamp
        assert json.loads(source.value())["tx_id"] == record.value["event_id"] and record.value["event_id"] in flagged
        assert int(record.headers[SOURCE_TS_HEADER]) == source.timestamp()[1]
        assert record.value["offset"] == int(record.headers[OFFSET_HEADER])
        assert record.key == f"{alert['alert_key']}/{record.value['count']}".encode()

    # routed: recorded for the store channel in the batch's transaction; the worker's dispatcher posted the webhook
    deliveries = {(d["alert_key"], d["channel"]): d for d in delivery_rows(store, "transactions")}
    critical = {k for k, a in alerts.items() if a["severity"] == "critical" and not a["suppressed"]}
    assert {k for k, _ in deliveries} == critical and all(d["status"] == "delivered" for d in deliveries.values())
    posted = {call.headers["idempotency-key"] for call in receiver.calls}
    assert posted == {f"transactions/{k}/hook/open" for k in critical}
    store.close()


class SavesUpTo(LocalCheckpointStore):
    """Ignores checkpoints past input offset ``limit``: a worker goes on publishing alert changes after its
    last saved checkpoint, as it does until a SIGKILL, and the next one replays from there."""

    def __init__(self, directory, limit: int) -> None:
        super().__init__(directory)
        self.limit = limit

    def save(self, partition, state, offset, meta=None):
        return super().save(partition, state, offset, meta) if offset <= self.limit else None


@pytest.mark.parametrize(("checkpoint_at", "replay_batch"), [(6_600, 170), (6_400, 100_000)],
                         ids=["checkpoint-mid-attack-replay-in-smaller-batches", "checkpoint-before-attack-replay-in-one-batch"])
def test_a_replay_cut_into_other_batches_sends_no_key_twice_and_counts_only_grow(tmp_path, kafka_brokers, stream,
                                                                                 checkpoint_at, replay_batch) -> None:
    """The attack runs from offset 6,501 to 7,018 of a one-partition topic. A worker checkpoints at
    ``checkpoint_at`` (the alert state with it); the next one goes on in batches of 60 up to 6,900 and is
    lost before it saves; a third resumes from the checkpoint and replays cut differently. In smaller
    batches, its changes are at counts the lost one never sent, below those it did: not sent, counts on
    the topic only grow. In one batch from before the attack, its first change of the attack's alert is an
    opening at a count above them: sent as an update, the opening is on the topic already."""
    events, card = stream
    data = small_spec_data(f"sqlite:///{tmp_path}/store.db", tmp_path / "ck")
    data["alerting"] = ALERTING
    spec = parse_spec(data)
    names = topics(kafka_brokers, partitions=1)
    source = kafka_source(kafka_brokers, names).model_copy(update={"fetch_max_messages": 60})
    checkpoints = SavesUpTo(tmp_path / "ck" / spec.name, limit=checkpoint_at - 1)
    for start, end in ((0, checkpoint_at), (checkpoint_at, 6_900)):
        publish(kafka_brokers, names["topic"], events.take(slice(start, end)))
        KafkaWorker(worker_spec(data, source, StreamSettings()), checkpoints=checkpoints, idle_exit=2.0).run()
    assert checkpoints.load(f"{names['topic']}/0").offset == checkpoint_at - 1
    first = alert_records(kafka_brokers, names["alerts_topic"])
    lost = [r for r in first if r.value["entity"] == card and int(r.headers[OFFSET_HEADER]) >= checkpoint_at]
    assert len(lost) >= 3, "the lost worker reported the attack past the checkpoint"

    publish(kafka_brokers, names["topic"], events.take(slice(6_900, len(events))))
    replay = source.model_copy(update={"fetch_max_messages": replay_batch})
    stats = KafkaWorker(worker_spec(data, replay, StreamSettings()), checkpoints=LocalCheckpointStore(tmp_path / "ck" / spec.name),
                        idle_exit=2.0).run()
    assert stats.events == len(events) - checkpoint_at

    reference = reference_run(tmp_path, kafka_brokers, names, data)
    alerts = stored_alerts(data["store"]["url"])
    assert alert_summary(alerts) == alert_summary(stored_alerts(reference))
    records = alert_records(kafka_brokers, names["alerts_topic"])
    check_topic_matches_store(records, alerts)
    assert records[:len(first)] == first and len(records) > len(first)
    (alert,) = [a for a in alerts.values() if a["entity"] == card]
    assert alert["count"] >= 0.9 * BURST


def test_the_worker_groups_budgets_and_routes_like_the_embedded_runner(tmp_path, kafka_brokers) -> None:
    # every anomaly may open an alert and at most 2 open a day: the budget cuts, and its cut-off moves
    alerting = {"min_severity": "info", "budget": {"per_day": 2, "adapt_every": "1h"}, "window": "1h", "quiet_period": "30m",
                "rules": [{"min_count": 3, "severity": "critical"}], "channels": {"db": {"kind": "store"}},
                "routes": [{"match": {"severity": ["critical"]}, "channels": ["db"]}]}
    runner_data = small_spec_data(f"sqlite:///{tmp_path}/runner.db", tmp_path / "runner-ck", seed=17)
    runner_data["alerting"] = alerting
    events = EventBatch.concat(list(simulator(runner_data).batches(5_000, max_events=20_000)))
    events.positions = np.arange(len(events), dtype=np.int64)
    # the embedded runner over the events...
    runner_spec = parse_spec(runner_data)
    runner_store = Store(runner_spec.store.url)
    runner = Runner(runner_spec, BatchSource(events), store=runner_store, checkpoints=False)
    runner.run()
    # ...and the Kafka worker over a one-partition topic holding them (cut into batches by Kafka, not the runner)
    data = small_spec_data(f"sqlite:///{tmp_path}/worker.db", tmp_path / "worker-ck", seed=17)
    data["alerting"] = alerting
    names = topics(kafka_brokers, partitions=1)
    publish(kafka_brokers, names["topic"], events)
    KafkaWorker(worker_spec(data, kafka_source(kafka_brokers, names), StreamSettings(checkpoint_url=str(tmp_path / "worker-ck"))),
                idle_exit=3.0).run()
    worker_store = Store(data["store"]["url"])

    def documents(store: Store) -> list[tuple]:
        return sorted((a["alert_key"], a["count"], a["severity"], a["status"], a["suppressed"], a["budget_cutoff"],
                       tuple(a["channels"]), tuple((d["channel"], d["status"]) for d in a["deliveries"]))
                      for a in alert_documents(store, "transactions"))

    expected = documents(runner_store)
    assert len(expected) >= 10 and runner.alerts.budget.rejected_today > 0, "the budget refused some"
    assert len({a[5] for a in expected}) > 1, "the budget's cut-off moved"
    assert any(a[2] == "critical" and a[7] == (("db", "delivered"),) for a in expected), "critical ones were routed"
    assert documents(worker_store) == expected
    runner_store.close()
    worker_store.close()
