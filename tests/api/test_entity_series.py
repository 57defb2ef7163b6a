"""A series pipeline's entity (host metrics): each metric over the host's recent readings with the band its series
model expected (expected ± 2 sigma, the "usual" of explanations) and the anomalies it explains; the dashboard's
words come from the schema (hosts and incidents, not cards and fraud)."""

from __future__ import annotations

import numpy as np
from fastapi.testclient import TestClient

from tests.api.conftest import busiest_entity


def test_each_metric_comes_with_its_usual_band_and_the_anomalies_it_explains(hosts_app, keys) -> None:
    key = busiest_entity(hosts_app)
    with TestClient(hosts_app) as client:
        entity = client.get(f"/v1/entities/{key}", headers=keys.headers("viewer")).json()
    events = entity["recent_events"]
    assert [m["metric"] for m in entity["metrics"]] == ["cpu", "memory", "net_mbps"]
    flagged = {e["event_id"]: e for e in events if e["is_anomaly"]}
    assert flagged, "the busiest host has anomalies among its recent readings"
    marked = set()
    for metric in entity["metrics"]:
        assert metric["features"] == [f"{metric['metric']}_surprise"]
        assert metric["times"] == [e["event_time"] for e in events]
        assert metric["values"] == [e["values"][metric["metric"]] for e in events]
        expected, sigma = np.array(metric["expected"], dtype=float), np.array(metric["sigma"], dtype=float)
        values, low, high = np.array(metric["values"]), np.array(metric["low"], dtype=float), np.array(metric["high"], dtype=float)
        assert np.isfinite(expected).all() and (sigma > 0).all(), "every reading has the band its model expected"
        np.testing.assert_allclose(high, expected + 2 * sigma)
        np.testing.assert_allclose(low, np.where((expected - 2 * sigma < 0) & (values >= 0), 0.0, expected - 2 * sigma))
        for anomaly in metric["anomalies"]:
            event = flagged[anomaly["event_id"]]  # only flagged readings are marked, at their value
            assert anomaly["value"] == event["values"][metric["metric"]] and anomaly["severity"] == event["severity"]
            assert anomaly["why"].startswith(f"{metric['metric']} "), anomaly["why"]  # its explanation names this metric
            marked.add(anomaly["event_id"])
    assert marked == set(flagged), "each anomaly is marked on the metric that explains it"
    stored = {a["event_id"]: a for a in entity["anomalies"]}
    for metric in entity["metrics"]:  # the band is the one the explanation speaks of
        for anomaly in metric["anomalies"]:
            if anomaly["event_id"] in stored:
                assert anomaly["why"] in "; ".join(item["text"] for item in stored[anomaly["event_id"]]["explanation"])


def test_the_vocabulary_speaks_of_hosts_and_incidents(hosts_app, client, keys) -> None:
    with TestClient(hosts_app) as hosts:
        words = hosts.get("/v1/vocabulary", headers=keys.headers("viewer")).json()
    assert words == {"pipeline": "hosts", "entity": "host", "entities": "hosts", "label": "incident", "labels": "incidents",
                     "events": "events", "metrics": ["cpu", "memory", "net_mbps"]}
    cards = client.get("/v1/vocabulary", headers=keys.headers("viewer")).json()
    assert (cards["entity"], cards["entities"], cards["label"], cards["metrics"]) == ("card", "cards", "fraud", [])


def test_an_entity_of_a_pipeline_without_series_has_no_metric_charts(client, seeded, keys) -> None:
    entity = client.get(f"/v1/entities/{seeded['anomalies'][0]['entity']}", headers=keys.headers("viewer")).json()
    assert entity["metrics"] == [] and entity["recent_events"]
    assert set(entity["recent_events"][0]) == {"event_id", "event_time", "score", "score_100", "is_anomaly", "severity", "values"}
