"""The Kafka worker against a real broker (tansu), end to end: poison records, PostgreSQL, 2 workers, rebalance.

Alerts are grouped per partition as the embedded runner groups them; the alerts topic carries one record per
alert change and must tell exactly the story of the store's alerts (:func:`helpers.check_topic_matches_store`)."""

from __future__ import annotations

import json
import signal
import threading
import time
from collections import Counter

import numpy as np
import pytest
from sqlalchemy import text

from tocsin.engine.worker import KafkaWorker
from tocsin.kafka.admin import create_topics, headers_of, read_topic
from tocsin.checkpoint import open_checkpoint_store
from tocsin.spec import StreamSettings
from tocsin.kafka.producer import produce_events
from tocsin.kafka.sinks import OFFSET_HEADER, PARTITION_HEADER, REASON_HEADER
from tocsin.store.sql import Store

from .helpers import (
    alert_records,
    alert_summary,
    check_topic_matches_store,
    dead_letters_on_topic,
    kafka_source,
    last_offsets,
    simulator,
    small_spec_data,
    start_worker,
    stored_alerts,
    topics,
    wait_checkpointed,
    worker_spec,
)

pytestmark = pytest.mark.kafka


def reference_run(tmp_path, brokers, names, data) -> str:
    """An uninterrupted single-worker run over the whole topic; returns its store's URL."""
    ref = small_spec_data(f"sqlite:///{tmp_path}/reference.db", tmp_path / "reference-ck", seed=data["source"]["seed"])
    ref["store"]["scored_events"] = data["store"].get("scored_events", False)
    ref["alerting"] = data.get("alerting", {})
    source = kafka_source(brokers, {"topic": names["topic"], "alerts_topic": None, "dlq_topic": None})
    KafkaWorker(worker_spec(ref, source, StreamSettings(checkpoint_url=str(tmp_path / "reference-ck"))), idle_exit=2.0).run()
    return ref["store"]["url"]


def run_reference(tmp_path, brokers, names, data) -> dict[str, float]:
    """An uninterrupted single-worker run over the whole topic: event id -> score."""
    return stored_scores(reference_run(tmp_path, brokers, names, data))[0]


def stored_scores(url: str) -> tuple[dict[str, float], int]:
    store = Store(url)
    rows = store.anomalies(limit=10_000_000)
    return {r["event_id"]: r["score"] for r in rows}, store.count("anomalies")


def assert_same(reference: dict[str, float], got: dict[str, float]) -> None:
    assert reference and got.keys() == reference.keys()
    np.testing.assert_allclose([got[k] for k in reference], [reference[k] for k in reference], rtol=0, atol=1e-9)


def test_poison_records_reach_the_dlq_with_reasons_and_the_rest_is_processed(tmp_path, kafka_brokers):
    data = small_spec_data(f"sqlite:///{tmp_path}/store.db", tmp_path / "ck")
    names = topics(kafka_brokers)
    sent = produce_events({"bootstrap.servers": kafka_brokers}, names["topic"], simulator(data), 30_000, malformed_share=0.05)
    assert 1_000 < sent["malformed"] < 2_000
    worker = KafkaWorker(worker_spec(data, kafka_source(kafka_brokers, names), StreamSettings(checkpoint_url=str(tmp_path / "ck"))),
                         idle_exit=2.0)
    stats = worker.run()
    assert stats.dead_letters == sent["malformed"] and stats.events == 30_000 - sent["malformed"]
    dlq = dead_letters_on_topic(kafka_brokers, names["dlq_topic"])
    assert len(dlq) == sent["malformed"] == len({key for key, _ in dlq})
    assert all(headers[REASON_HEADER] for _, headers in dlq)
    store = Store(data["store"]["url"])
    assert store.count("dead_letters") == sent["malformed"]
    assert stats.anomalies > 0 and store.count("anomalies") == stats.anomalies
    alerts = stored_alerts(data["store"]["url"])
    alerting = stats.by_severity["warning"] + stats.by_severity["critical"]
    assert 0 < len(alerts) < alerting, "anomalies are grouped into fewer alerts"
    assert sum(a["count"] for a in alerts.values()) <= stats.anomalies
    check_topic_matches_store(alert_records(kafka_brokers, names["alerts_topic"]), alerts)


def test_end_to_end_two_workers_postgres_every_injected_anomaly_accounted_for(tmp_path, kafka_brokers, pg_url):
    data = small_spec_data(pg_url, tmp_path / "ck")
    data["store"]["scored_events"] = True
    names = topics(kafka_brokers)
    sim = simulator(data)
    produce_events({"bootstrap.servers": kafka_brokers}, names["topic"], sim, 40_000)
    source = kafka_source(kafka_brokers, names)
    settings = StreamSettings(checkpoint_url=str(tmp_path / "ck"))
    workers = [start_worker(tmp_path, data, source, settings, str(i)) for i in range(2)]
    try:
        wait_checkpointed(open_checkpoint_store(str(tmp_path / "ck"), data["name"]), last_offsets(kafka_brokers, names["topic"]), 120)
    finally:
        for w in workers:
            w.send_signal(signal.SIGTERM)
        for w in workers:
            w.wait(30)
    events = [json.loads(m.value()) | {"_p": m.partition(), "_o": m.offset()} for m in read_topic({"bootstrap.servers": kafka_brokers}, names["topic"])]
    warmup = {e["tx_id"] for e in events if e["_o"] < data["detector"]["warmup_events"]}
    fraud = {e["tx_id"] for e in events if e["is_fraud"]}
    assert fraud
    store = Store(pg_url)
    with store.engine.connect() as conn:
        from sqlalchemy import text

        scored = dict(conn.execute(text("select event_id, is_anomaly from scored_events")).all())
    assert len(scored) == len(events) - len(warmup) == store.count("scored_events")
    assert fraud <= set(scored) | warmup, "every injected fraud event was scored or fell in a partition's warm-up"
    flagged = {k for k, v in scored.items() if v}
    assert store.anomaly_event_ids("transactions") == flagged
    caught = fraud & flagged
    assert len(caught) / len(fraud - warmup) > 0.3
    alerts = stored_alerts(pg_url)
    assert 0 < len(alerts) == store.count("alerts") < len(flagged) / 2, "anomalies are grouped into alerts"
    assert {a["first_event_id"] for a in alerts.values()} <= flagged
    check_topic_matches_store(alert_records(kafka_brokers, names["alerts_topic"]), alerts)


def test_rebalance_the_survivor_takes_over_with_state(tmp_path, kafka_brokers):
    data = small_spec_data(f"sqlite:///{tmp_path}/store.db", tmp_path / "ck", seed=9)
    names = topics(kafka_brokers)
    sim = simulator(data)
    client = {"bootstrap.servers": kafka_brokers}
    source = kafka_source(kafka_brokers, names)
    checkpoints = open_checkpoint_store(str(tmp_path / "ck"), data["name"])
    health = [tmp_path / f"health-{i}.json" for i in range(2)]
    workers = [
        start_worker(tmp_path, data, source, StreamSettings(checkpoint_url=str(tmp_path / "ck"), health_path=health[i]), str(i))
        for i in range(2)
    ]
    try:
        # Publish only once the group has settled with one partition each: a worker that joins
        # alone first would otherwise score everything before the other one arrives.
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            owned = [json.loads(h.read_text())["partitions"] if h.exists() else [] for h in health]
            if all(len(p) == 1 for p in owned):
                break
            time.sleep(0.2)
        else:
            pytest.fail(f"the group did not settle on one partition per worker: {owned}")
        produce_events(client, names["topic"], sim, 30_000)
        wait_checkpointed(checkpoints, last_offsets(kafka_brokers, names["topic"]), 120)
        owners = {name: checkpoints.load(name).meta["worker"] for name in checkpoints.partitions()}
        assert sorted(owners.values()) == ["0", "1"], f"each worker owned one partition: {owners}"
        workers[1].send_signal(signal.SIGTERM)
        assert workers[1].wait(30) == 0
        produce_events(client, names["topic"], sim, 30_000, start_position=30_000)
        wait_checkpointed(checkpoints, last_offsets(kafka_brokers, names["topic"]), 120)
        owners = {name: checkpoints.load(name).meta["worker"] for name in checkpoints.partitions()}
        assert set(owners.values()) == {"0"}, owners
    finally:
        for w in workers:
            if w.poll() is None:
                w.send_signal(signal.SIGTERM)
                w.wait(30)
    got, rows = stored_scores(data["store"]["url"])
    assert rows == len(got)
    reference = reference_run(tmp_path, kafka_brokers, names, data)
    assert_same(stored_scores(reference)[0], got)
    # the survivor took the partition's alert state over: the same alerts as one uninterrupted worker
    alerts = stored_alerts(data["store"]["url"])
    assert alerts and alert_summary(alerts) == alert_summary(stored_alerts(reference))
    check_topic_matches_store(alert_records(kafka_brokers, names["alerts_topic"]), alerts)


@pytest.mark.postgres
@pytest.mark.slow
def test_store_outage_pauses_and_resumes_without_loss(tmp_path, kafka_brokers, pg_server):
    url = pg_server.create_database()
    data = small_spec_data(url, tmp_path / "ck", seed=13)
    names = topics(kafka_brokers)
    client = {"bootstrap.servers": kafka_brokers}
    sim = simulator(data)
    produce_events(client, names["topic"], sim, 15_000)
    health = tmp_path / "health.json"
    source = kafka_source(kafka_brokers, names)
    settings = StreamSettings(checkpoint_url=str(tmp_path / "ck"), health_path=health, retry_max=2.0)
    worker = start_worker(tmp_path, data, source, settings, "0")
    producer = threading.Thread(target=produce_events, args=(client, names["topic"], sim, 25_000),
                                kwargs={"rate": 800, "start_position": 15_000})
    seen = Counter()
    try:
        wait_checkpointed(open_checkpoint_store(str(tmp_path / "ck"), data["name"]),
                          last_offsets(kafka_brokers, names["topic"]), 120)
        producer.start()
        pg_server.stop("immediate")
        stopped = time.monotonic()
        while time.monotonic() - stopped < 20:
            if health.exists():
                state = json.loads(health.read_text())
                seen[(state["status"], tuple(state["degraded"]), state["paused"])] += 1
            time.sleep(0.5)
        pg_server.start()
        producer.join()
        wait_checkpointed(open_checkpoint_store(str(tmp_path / "ck"), data["name"]),
                          last_offsets(kafka_brokers, names["topic"]), 120)
        assert json.loads(health.read_text())["status"] == "ok"
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(30)
    # the model registry lives in the same database (registry.follow): it is reported down with the store
    paused = sum(n for (status, degraded, pause), n in seen.items() if status == "degraded" and "store" in degraded and pause)
    assert paused > 10 and {d for (_, degraded, _) in seen for d in degraded} <= {"store", "registry"}, seen
    got, rows = stored_scores(url)
    assert rows == len(got)
    reference = reference_run(tmp_path, kafka_brokers, names, data)
    assert_same(stored_scores(reference)[0], got)
    alerts = stored_alerts(url)
    assert alerts and alert_summary(alerts) == alert_summary(stored_alerts(reference))
    check_topic_matches_store(alert_records(kafka_brokers, names["alerts_topic"]), alerts)


def test_scored_topic_carries_every_scored_event_once_with_its_input_offset(tmp_path, kafka_brokers):
    data = small_spec_data(f"sqlite:///{tmp_path}/store.db", tmp_path / "ck")
    data["store"]["scored_events"] = True  # the topic and the store get the same rows
    names = topics(kafka_brokers)
    names["scored_topic"] = f"scored-{names['topic']}"
    create_topics({"bootstrap.servers": kafka_brokers}, {names["scored_topic"]: 2})
    produce_events({"bootstrap.servers": kafka_brokers}, names["topic"], simulator(data), 12_000)
    stats = KafkaWorker(worker_spec(data, kafka_source(kafka_brokers, names), StreamSettings(checkpoint_url=str(tmp_path / "ck"))),
                        idle_exit=2.0).run()
    inputs = {json.loads(m.value())["tx_id"]: (m.partition(), m.offset())
              for m in read_topic({"bootstrap.servers": kafka_brokers}, names["topic"])}
    records = list(read_topic({"bootstrap.servers": kafka_brokers}, names["scored_topic"]))
    values = [json.loads(m.value()) for m in records]
    assert 0 < len(records) == stats.scored < stats.events  # the warm-up events are not scored
    assert len({v["event_id"] for v in values}) == len(values)
    for message, value in zip(records, values):
        headers = headers_of(message)
        assert message.key().decode() == value["event_id"]
        assert (int(headers[PARTITION_HEADER]), int(headers[OFFSET_HEADER])) == inputs[value["event_id"]]
        assert set(value) == {"event_id", "entity", "event_time", "score", "is_anomaly"}
    store = Store(data["store"]["url"])
    with store.engine.connect() as conn:
        stored = {row.event_id: (row.score, row.is_anomaly) for row in conn.execute(text("select event_id, score, is_anomaly from scored_events"))}
    assert stored == {v["event_id"]: (v["score"], v["is_anomaly"]) for v in values}


def test_reading_the_next_poll_ahead_changes_no_score_and_loses_or_repeats_nothing(tmp_path, kafka_brokers, monkeypatch):
    """After a full poll the worker reads the next one ahead and starts its decoding on the second core; the
    scores are those of a worker that never reads ahead, every event counted once."""
    names = topics(kafka_brokers)
    seed_data = small_spec_data("sqlite:///unused.db", tmp_path / "unused")
    produce_events({"bootstrap.servers": kafka_brokers}, names["topic"], simulator(seed_data), 12_000)
    runs = {}
    read_ahead = []
    original = KafkaWorker._read_ahead

    def counting(self, batch_size):
        got = original(self, batch_size)
        read_ahead.append(got is not None)
        return got

    for label in ("never ahead", "ahead"):
        if label == "never ahead":
            monkeypatch.setattr(KafkaWorker, "_read_ahead", lambda self, batch_size: None)
        else:
            monkeypatch.setattr(KafkaWorker, "_read_ahead", counting)
        data = small_spec_data(f"sqlite:///{tmp_path}/{label.replace(' ', '-')}.db", tmp_path / f"ck-{label}")
        source = kafka_source(kafka_brokers, {**names, "alerts_topic": None, "dlq_topic": None}).model_copy(
            update={"fetch_max_messages": 500})  # a fresh group each run: both read the whole topic
        stats = KafkaWorker(worker_spec(data, source, StreamSettings(checkpoint_url=str(tmp_path / f"ck-{label}"))), idle_exit=2.0).run()
        assert stats.events == 12_000
        runs[label] = stored_scores(data["store"]["url"])
    assert sum(read_ahead) >= 5, read_ahead  # it did read ahead
    assert runs["ahead"][1] == runs["never ahead"][1] > 0
    assert_same(runs["never ahead"][0], runs["ahead"][0])
