"""Labels from a Kafka topic reach every partition's label features and survive kill -9: each label is
applied exactly once per partition state (checked against the definition: a merchant's decayed count is
the sum of its labels' decayed weights, so a label applied twice or lost shows), and a malformed label
becomes a dead letter with its reason."""

from __future__ import annotations

import json
import random
import signal
import time
import uuid

import msgspec
import numpy as np
import pytest
from confluent_kafka import Producer

from tocsin.checkpoint import open_checkpoint_store
from tocsin.engine.pipeline import Pipeline
from tocsin.features.labels import ConfirmedRisk
from tocsin.kafka.admin import create_topics
from tocsin.kafka.producer import produce_events
from tocsin.spec import StreamSettings, parse_spec
from tocsin.store.sql import Store

from .helpers import (
    kafka_source,
    last_offsets,
    simulator,
    small_spec_data,
    start_worker,
    topics,
    wait_checkpointed,
    wait_owning,
)

pytestmark = [pytest.mark.kafka]

EVENTS = 30_000
LABELS = 400
HALF_LIFE = 7 * 86_400.0


def test_labels_from_a_topic_are_applied_exactly_once_across_kill_9(tmp_path, kafka_brokers) -> None:
    data = small_spec_data(f"sqlite:///{tmp_path}/store.db", tmp_path / "ck", seed=31)
    data["features"].append({"kind": "confirmed", "by": "merchant_id", "half_lives": ["7d"]})
    names = topics(kafka_brokers)
    labels_topic = f"labels-{uuid.uuid4().hex[:8]}"
    create_topics({"bootstrap.servers": kafka_brokers}, {labels_topic: 2})
    client = {"bootstrap.servers": kafka_brokers}
    sim = simulator(data)
    events = sim.generate(EVENTS)
    produce_events(client, names["topic"], sim, EVENTS)

    # labels for merchants the stream has, known at times inside it (so every one comes due)
    rng = np.random.default_rng(5)
    rows = rng.choice(np.arange(EVENTS // 10, EVENTS - EVENTS // 10), size=LABELS, replace=False)
    labels = [{"card_id": str(events.keys[r]), "merchant_id": str(events.categorical["merchant_id"][r]), "label": 1,
               "known_at": float(events.times[r]) + 3_600.0} for r in sorted(rows)]
    producer = Producer(client)
    for i, label in enumerate(labels):
        producer.produce(labels_topic, msgspec.json.encode(label), key=str(i % 7).encode())
    producer.produce(labels_topic, b'{"card_id": "c1", "label": "maybe"}', key=b"0")  # malformed: a dead letter
    producer.flush(10)
    producer.close()

    source = kafka_source(kafka_brokers, names).model_copy(update={"labels_topic": labels_topic})
    health = tmp_path / "health.json"
    settings = StreamSettings(checkpoint_url=str(tmp_path / "ck"), health_path=health)
    random_moment = random.Random(3)
    worker = start_worker(tmp_path, data, source, settings, "0")
    def owning(worker) -> None:
        assert wait_owning(health, worker), "the worker did not get its partitions"

    for _ in range(3):  # kill -9 at random moments while it works through events and labels
        owning(worker)
        time.sleep(random_moment.uniform(0.2, 2.0))
        worker.send_signal(signal.SIGKILL)
        worker.wait()
        worker = start_worker(tmp_path, data, source, settings, "0")
    checkpoints = open_checkpoint_store(str(tmp_path / "ck"), data["name"])
    spec = parse_spec(data)

    def applied_everywhere() -> bool:
        states = [checkpoints.load(f"{names['topic']}/{p}") for p in (0, 1)]
        if any(s is None for s in states):
            return False
        return all(sum(json.loads(str(s.state["pipeline/meta"]))["labels_applied"].values()) == LABELS for s in states)

    for attempt in range(6):  # stop it cleanly (its last checkpoint holds the labels it applied); again until all are in
        owning(worker)
        wait_checkpointed(checkpoints, last_offsets(kafka_brokers, names["topic"]), 180)
        time.sleep(1.0)
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(60) == 0
        if applied_everywhere():
            break
        worker = start_worker(tmp_path, data, source, settings, "0")
    else:
        pytest.fail("labels never all applied")

    expected_sources = None
    checked = 0
    for partition in (0, 1):
        saved = checkpoints.load(f"{names['topic']}/{partition}")
        pipeline = Pipeline(spec)
        pipeline.load_state_dict(saved.state)
        applied = pipeline.labels_applied
        sources = {k for k in applied if k.startswith(f"kafka-labels:{labels_topic}/")}
        expected_sources = expected_sources or sources
        assert sources and sources == expected_sources, applied
        assert sum(applied.values()) == LABELS, "every label applied (the malformed one, last in its partition, is not)"
        risk = next(op for op in pipeline.features.operators if isinstance(op, ConfirmedRisk))
        interner = pipeline.features.interners["merchant_id"]
        by_merchant: dict[str, list[float]] = {}
        for label in labels:
            by_merchant.setdefault(label["merchant_id"], []).append(label["known_at"])
        for merchant, arrivals in by_merchant.items():
            key = interner.lookup(merchant)
            assert key is not None, merchant
            last = risk._last[key]
            expected = sum(2 ** (-(last - a) / HALF_LIFE) for a in arrivals)
            assert risk._positives[key, 0] == pytest.approx(expected, rel=1e-9), (partition, merchant)
            checked += 1
    assert checked == 2 * len({label["merchant_id"] for label in labels})

    dead = Store(data["store"]["url"]).dead_letters(pipeline=data["name"], limit=100)
    bad = [d for d in dead if d["source"].startswith(f"kafka-labels:{labels_topic}/")]
    assert len(bad) == 1 and "label: expected 1/0" in bad[0]["reason"], bad
