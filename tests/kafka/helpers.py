"""Shared pieces of the Kafka tests: a small spec, topics, worker processes, reading results back
(and checking the alerts topic against the store)."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tocsin.alerting.outbox import alert_documents
from tocsin.kafka.admin import create_topics, headers_of, read_topic
from tocsin.simulate import TransactionSimulator
from tocsin.spec import KafkaSource, PipelineSpec, StreamSettings, parse_spec
from tocsin.store.sql import Store

REFERENCE = Path(__file__).resolve().parents[2] / "src" / "tocsin" / "specs" / "transactions.yaml"
SESSION_TIMEOUT_MS = 6_000  # tansu holds a JoinGroup ~timeout/2; librdkafka's 45 s default would stall every test


def small_spec_data(store_url: str, checkpoint_dir: Path, users: int = 500, seed: int = 5) -> dict[str, Any]:
    data = yaml.safe_load(REFERENCE.read_text())
    data["source"].update({"users": users, "warmup_days": 0.5, "fraud_rate": 0.01, "seed": seed})
    data["detector"].update({"warmup_events": 2_000, "refit_every": 10_000, "train_window": 5_000})
    data["detector"]["params"]["n_estimators"] = 50
    data["calibration"]["window"] = 5_000
    data["store"]["url"] = store_url
    data["checkpoint"] = {"dir": str(checkpoint_dir), "interval": "1s"}
    data["runner"] = {"batch_size": 5_000, "max_wait": "50ms"}
    parse_spec(data)
    return data


def simulator(data: dict[str, Any]) -> TransactionSimulator:
    return TransactionSimulator.from_spec(parse_spec(data).source)


def topics(brokers: str, partitions: int = 2) -> dict[str, str]:
    """Fresh events/alerts/dead-letters topics (names unique per test; tansu keeps topics in memory)."""
    tag = uuid.uuid4().hex[:8]
    names = {"topic": f"events-{tag}", "alerts_topic": f"alerts-{tag}", "dlq_topic": f"dlq-{tag}"}
    create_topics({"bootstrap.servers": brokers}, {name: partitions for name in names.values()})
    return names


def kafka_source(brokers: str, names: dict[str, str], group: str | None = None) -> KafkaSource:
    return KafkaSource(kind="kafka", brokers=brokers, group=group or f"g-{uuid.uuid4().hex[:8]}",
                       session_timeout_ms=SESSION_TIMEOUT_MS, max_poll_interval_ms=60_000, **names)


def worker_spec(spec_data: dict[str, Any], source: KafkaSource, settings: StreamSettings) -> PipelineSpec:
    """The spec a worker runs: ``spec_data`` with ``source`` and ``settings`` as its source and stream sections."""
    return parse_spec({**spec_data, "source": source.model_dump(mode="json"), "stream": settings.model_dump(mode="json")})


def start_worker(tmp: Path, spec_data: dict[str, Any], source: KafkaSource, settings: StreamSettings, worker_id: str,
                 idle_exit: float | None = None) -> subprocess.Popen:
    spec = worker_spec(spec_data, source, settings)
    config = {"spec": spec.model_dump(mode="json", by_alias=True), "worker_id": worker_id, "idle_exit": idle_exit}
    path = tmp / f"worker-{worker_id}-{uuid.uuid4().hex[:6]}.json"
    path.write_text(json.dumps(config))
    log = open(tmp / f"worker-{worker_id}.log", "ab")
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOCSIN_")}
    return subprocess.Popen([sys.executable, "-m", "tocsin.engine.process", str(path)], stdout=log, stderr=subprocess.STDOUT, env=env)


def wait_owning(health: Path, worker: subprocess.Popen, timeout: float = 60.0) -> bool:
    """Until this incarnation of a worker reports (in its health file) that it owns partitions."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        state = json.loads(health.read_text()) if health.exists() else {}
        if state.get("pid") == worker.pid and state.get("partitions"):
            return True
        time.sleep(0.05)
    return False


def kill_while_producing(start: Callable[[], subprocess.Popen], health: Path, producer: threading.Thread, kills: int,
                         rng: random.Random, pause: float = 1.5,
                         on_kill: Callable[[int], None] | None = None) -> tuple[subprocess.Popen, int]:
    """kill -9 the worker ``start()`` makes at random moments (during restore, a batch, a checkpoint or idling:
    each incarnation first owns its partitions), restarting it each time, at least ``kills`` times and until
    ``producer`` is done; ``on_kill(n)`` runs after the n-th. Returns the last incarnation and the kill count."""
    worker, done = start(), 0
    while done < kills or producer.is_alive():
        wait_owning(health, worker)
        time.sleep(rng.uniform(0.0, pause))
        if done >= kills and not producer.is_alive():
            break
        worker.send_signal(signal.SIGKILL)
        worker.wait()
        done += 1
        if on_kill is not None:
            on_kill(done)
        worker = start()
    return worker, done


def run_with_kills(tmp: Path, brokers: str, names: dict[str, str], data: dict[str, Any], simulator: Any, events: int,
                   rate: float, kills: int, rng: random.Random) -> int:
    """Publish ``events`` (the first 20,000 at once, the rest at ``rate`` while the worker runs) and kill -9 a
    worker at least ``kills`` times meanwhile (:func:`kill_while_producing`); returns once every partition's
    checkpoint reached its last offset and the last incarnation stopped. Returns the number of kills."""
    from tocsin.checkpoint import open_checkpoint_store
    from tocsin.kafka.producer import produce_events

    client = {"bootstrap.servers": brokers}
    produce_events(client, names["topic"], simulator, 20_000)
    producer = threading.Thread(target=produce_events, args=(client, names["topic"], simulator, events - 20_000),
                                kwargs={"rate": rate, "start_position": 20_000})
    source = kafka_source(brokers, names)
    health = tmp / "health.json"
    settings = StreamSettings(checkpoint_url=str(tmp / "ck"), health_path=health)
    producer.start()
    worker = None
    try:
        worker, done = kill_while_producing(lambda: start_worker(tmp, data, source, settings, "0"), health, producer, kills, rng)
        producer.join()
        wait_checkpointed(open_checkpoint_store(str(tmp / "ck"), data["name"]), last_offsets(brokers, names["topic"]), 180)
    finally:
        if worker is not None:
            worker.send_signal(signal.SIGTERM)
            worker.wait(30)
    return done


def wait_checkpointed(checkpoints, partitions: dict[str, int], timeout: float) -> None:
    """Until every partition's checkpoint reached its last offset (``{name: last_offset}``)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done = True
        for name, last in partitions.items():
            try:
                checkpoint = checkpoints.load(name)
            except Exception:  # noqa: BLE001 - a checkpoint being replaced on a slow disk
                checkpoint = None
            if checkpoint is None or checkpoint.offset < last:
                done = False
                break
        if done:
            return
        time.sleep(0.2)
    raise TimeoutError(f"partitions not fully checkpointed within {timeout} s: {partitions}")


def last_offsets(brokers: str, topic: str) -> dict[str, int]:
    """Last offset of every partition of ``topic``, counted by reading (tansu's watermarks are wrong)."""
    out: dict[str, int] = {}
    for message in read_topic({"bootstrap.servers": brokers}, topic):
        out[f"{topic}/{message.partition()}"] = max(out.get(f"{topic}/{message.partition()}", -1), message.offset())
    return out


def alerts_on_topic(brokers: str, topic: str) -> list[dict[str, Any]]:
    return [json.loads(m.value()) for m in read_topic({"bootstrap.servers": brokers}, topic)]


@dataclass
class AlertRecord:
    """One record of the alerts topic: an alert change."""

    key: bytes
    headers: dict[str, bytes]
    value: dict[str, Any]
    partition: int
    offset: int


def alert_records(brokers: str, topic: str) -> list[AlertRecord]:
    """The alerts topic's records, partition by partition, in order."""
    return [AlertRecord(m.key(), headers_of(m), json.loads(m.value()), m.partition(), m.offset())
            for m in read_topic({"bootstrap.servers": brokers}, topic)]


def stored_alerts(url: str, pipeline: str = "transactions") -> dict[str, dict[str, Any]]:
    """The store's alerts with their details, by alert key."""
    store = Store(url)
    try:
        return {a["alert_key"]: a for a in alert_documents(store, pipeline)}
    finally:
        store.close()


def alert_summary(alerts: dict[str, dict[str, Any]]) -> list[tuple]:
    """What two runs over the same stream must agree on, alert by alert."""
    return sorted((key, a["entity"], a["count"], a["severity"], a["status"], a["first_event_id"], a["suppressed"],
                   a["last_event_time"]) for key, a in alerts.items())


def check_topic_matches_store(records: list[AlertRecord], alerts: dict[str, dict[str, Any]]) -> dict[str, list[AlertRecord]]:
    """The alerts topic tells each stored alert's story and nothing else: no key twice; per alert one
    "opened" first, "updated" records with growing counts, "resolved" last iff the store says resolved,
    and its latest count and severity equal the store's. Returns the records by alert key."""
    keys = [r.key for r in records]
    duplicates = sorted(k for k, n in Counter(keys).items() if n > 1)
    assert not duplicates, f"{len(duplicates)} key(s) twice on the alerts topic, e.g. {duplicates[:3]}"
    by_alert: dict[str, list[AlertRecord]] = {}
    for record in records:
        by_alert.setdefault(record.value["alert_key"], []).append(record)
    assert set(by_alert) == set(alerts), (
        f"topic only: {sorted(set(by_alert) - set(alerts))[:3]}, store only: {sorted(set(alerts) - set(by_alert))[:3]}")
    for alert_key, story in by_alert.items():
        stored = alerts[alert_key]
        kinds = [r.value["change"] for r in story]
        assert kinds[0] == "opened" and "opened" not in kinds[1:], (alert_key, kinds)
        resolved = [r for r in story if r.value["change"] == "resolved"]
        assert len(resolved) == (stored["status"] == "resolved") and (not resolved or kinds[-1] == "resolved"), (alert_key, kinds)
        counts = [r.value["count"] for r in story if r.value["change"] != "resolved"]
        assert counts == sorted(set(counts)), (alert_key, counts)
        assert [r.key for r in story if r.value["change"] != "resolved"] == [f"{alert_key}/{c}".encode() for c in counts]
        latest = story[-1].value
        assert (latest["count"], latest["severity"], latest["suppressed"]) == (
            stored["count"], stored["severity"], stored["suppressed"]), (alert_key, latest, stored)
        assert all(r.partition == story[0].partition for r in story), "one alert's records share one output partition"
    return by_alert


def dead_letters_on_topic(brokers: str, topic: str) -> list[tuple[bytes, dict[str, bytes]]]:
    return [(m.key(), headers_of(m)) for m in read_topic({"bootstrap.servers": brokers}, topic)]
