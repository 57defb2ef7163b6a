"""Crash safety: kill -9 a worker at random points of a 200k-event stream, restart it each time; the
results (anomalies and grouped alerts) equal an uninterrupted run's, with no duplicate in the store or
on the alerts topic, whose records tell the stored alerts' story."""

from __future__ import annotations

import random

import pytest

from tocsin.alerting.outbox import delivery_rows
from tocsin.store.sql import Store

from .helpers import (
    alert_records,
    alert_summary,
    check_topic_matches_store,
    run_with_kills,
    simulator,
    small_spec_data,
    stored_alerts,
    topics,
)
from .test_worker import assert_same, reference_run, stored_scores

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

EVENTS = 200_000
KILLS = 10


def test_kill_9_at_random_points_changes_nothing(tmp_path, kafka_brokers):
    data = small_spec_data(f"sqlite:///{tmp_path}/store.db", tmp_path / "ck", seed=21)
    # critical alerts are routed to the store channel: their outbox rows are written in the batch's transaction
    data["alerting"] = {"rules": [{"min_count": 3, "severity": "critical"}], "channels": {"db": {"kind": "store"}},
                        "routes": [{"match": {"severity": ["critical"]}, "channels": ["db"]}]}
    names = topics(kafka_brokers)
    # the stream arrives while the worker is being killed, so kills land all along it
    kills = run_with_kills(tmp_path, kafka_brokers, names, data, simulator(data), EVENTS, 2_000, KILLS, random.Random(4))
    assert kills >= KILLS
    got, rows = stored_scores(data["store"]["url"])
    assert rows == len(got), "no duplicate anomaly rows"
    reference = reference_run(tmp_path, kafka_brokers, names, data)
    assert_same(stored_scores(reference)[0], got)
    alerts = stored_alerts(data["store"]["url"])
    expected = stored_alerts(reference)
    assert len(expected) > 20 and any(a["count"] > 1 for a in expected.values())
    assert alert_summary(alerts) == alert_summary(expected), "the same alerts (keys, counts, severity, status)"
    assert Store(data["store"]["url"]).count("alerts") == len(expected), "no duplicate alert rows"
    records = alert_records(kafka_brokers, names["alerts_topic"])
    check_topic_matches_store(records, alerts)  # no key twice, and the story of each stored alert
    deliveries = sorted((d["alert_key"], d["channel"], d["notification"], d["status"], d["idempotency_key"])
                        for d in delivery_rows(Store(data["store"]["url"]), "transactions"))
    assert deliveries and deliveries == sorted(
        (d["alert_key"], d["channel"], d["notification"], d["status"], d["idempotency_key"])
        for d in delivery_rows(Store(reference), "transactions")), "the outbox holds each delivery once"
