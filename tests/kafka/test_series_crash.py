"""The per-series family on Kafka: host metrics (series features, max-surprise, silence) through a worker that
is killed -9 ten times gives the same anomalies (silences included) and alerts as an uninterrupted run; and a
partition that goes idle still reports its silent hosts, with no event to trigger it."""

from __future__ import annotations

import json
import random
import time

import pytest
import yaml

from tocsin.engine.worker import KafkaWorker
from tocsin.kafka.producer import produce_events
from tocsin.simulate.hosts import HostMetricsSimulator
from tocsin.spec import StreamSettings, parse_spec
from tocsin.store.sql import Store

from .helpers import (
    alert_summary,
    kafka_source,
    run_with_kills,
    stored_alerts,
    topics,
    worker_spec,
)
from .test_worker import assert_same, stored_scores

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

HOSTS = 40
EVENTS = HOSTS * 1440 * 2
KILLS = 10


def hosts_spec_data(store_url: str, checkpoint_dir, **source) -> dict:
    with open("examples/hosts.yaml") as handle:
        data = yaml.safe_load(handle)
    data["source"].update({"hosts": HOSTS, "incident_rate": 0.5, "warmup_days": 0.25, "seed": 3, **source})
    data["detector"].update({"warmup_events": 2_000, "train_window": 2_000})
    data["calibration"]["window"] = 20_000
    data["threshold"]["value"] = 0.999  # more anomalies (and alerts) to compare than the reference spec's cut-off gives
    data["store"]["url"] = store_url
    data["checkpoint"] = {"dir": str(checkpoint_dir), "interval": "1s"}
    data["runner"] = {"batch_size": 5_000, "max_wait": "50ms"}
    parse_spec(data)
    return data


def test_kill_9_ten_times_changes_no_series_anomaly_silence_or_alert(tmp_path, kafka_brokers):
    data = hosts_spec_data(f"sqlite:///{tmp_path}/store.db", tmp_path / "ck")
    names = topics(kafka_brokers)
    simulator = HostMetricsSimulator.from_spec(parse_spec(data).source)
    kills = run_with_kills(tmp_path, kafka_brokers, names, data, simulator, EVENTS, 2_500, KILLS, random.Random(7))
    assert kills >= KILLS
    got, rows = stored_scores(data["store"]["url"])
    assert rows == len(got), "no duplicate anomaly rows"
    reference = hosts_spec_data(f"sqlite:///{tmp_path}/reference.db", tmp_path / "reference-ck")
    plain = kafka_source(kafka_brokers, {"topic": names["topic"], "alerts_topic": None, "dlq_topic": None})
    KafkaWorker(worker_spec(reference, plain, StreamSettings(checkpoint_url=str(tmp_path / "reference-ck"))), idle_exit=2.0).run()
    expected = stored_scores(reference["store"]["url"])[0]
    assert any(key.startswith("silence:") for key in expected), "the simulated silent hosts are found"
    assert sum(not key.startswith("silence:") for key in expected) > 50
    assert_same(expected, got)
    alerts, expected_alerts = stored_alerts(data["store"]["url"], "hosts"), stored_alerts(reference["store"]["url"], "hosts")
    assert len(expected_alerts) > 10
    assert alert_summary(alerts) == alert_summary(expected_alerts), "the same alerts (keys, counts, severity, status)"
    assert Store(data["store"]["url"]).count("alerts") == len(expected_alerts), "no duplicate alert rows"


def test_an_idle_partition_still_reports_its_silent_hosts(tmp_path, kafka_brokers):
    data = hosts_spec_data(f"sqlite:///{tmp_path}/store.db", tmp_path / "ck", hosts=6, report_every=1.0,
                           incident_rate=0.0, warmup_days=0.0)
    data["detector"].update({"warmup_events": 100, "train_window": 100})
    names = topics(kafka_brokers)
    simulator = HostMetricsSimulator.from_spec(parse_spec(data).source)
    produce_events({"bootstrap.servers": kafka_brokers}, names["topic"], simulator, 600)  # 100 s of readings, then nothing
    last = {host: t for host, t in zip(simulator.generate(600).keys.tolist(), simulator.generate(600).times.tolist())}
    worker = KafkaWorker(worker_spec(data, kafka_source(kafka_brokers, names), StreamSettings(checkpoint_url=str(tmp_path / "ck"))),
                         idle_exit=12.0)
    started = time.monotonic()
    stats = worker.run()
    assert stats.events == 600 and time.monotonic() - started >= 12.0
    silences = [a for a in Store(data["store"]["url"]).anomalies(pipeline="hosts", limit=1_000) if a["detector"] == "silence"]
    assert {a["entity"] for a in silences} == set(last), "every host of both idle partitions"
    for anomaly in silences:
        if anomaly["event_id"].endswith(":1"):
            assert anomaly["event_time"] == pytest.approx(last[anomaly["entity"]] + 2.5, abs=0.2), anomaly
    text = silences[0]["explanation"][0]["text"]
    assert "silent for" in text and "usually reports every 1 s" in text, json.dumps(silences[0])
