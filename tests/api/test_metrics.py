"""/metrics exports every metric the Grafana dashboard queries; counters move with the traffic;
prometheus.yml scrapes the service; request logs are JSON lines."""

from __future__ import annotations

import json
import logging
import re

import yaml

from tocsin.api.logs import JsonFormatter
from tests.api.conftest import EVENTS, WARM_EVENTS
from tests.metrics_helpers import DEPLOY, grafana_metric_names


def test_every_metric_the_grafana_dashboard_queries_is_exported(client, seeded) -> None:
    queried = grafana_metric_names()
    assert {"tocsin_events_in_total", "tocsin_events_out_total", "tocsin_dead_letters_total", "tocsin_anomalies_total",
            "tocsin_batch_latency_seconds_bucket", "tocsin_event_decision_lag_seconds_bucket", "tocsin_model_info",
            "tocsin_checkpoint_age_seconds"} <= queried
    exported = client.app.state.service.metrics.exported_names()
    assert queried <= exported, f"queried but not exported: {sorted(queried - exported)}"
    text = client.get("/metrics").text
    for name in queried:
        assert re.search(rf"^{name}[{{ ]", text, re.M), name


def test_counters_follow_the_traffic(client, keys, records) -> None:
    body = client.post("/v1/score", json={"events": records[WARM_EVENTS:EVENTS]}, headers=keys.headers("analyst")).json()
    flagged = [r for r in body["results"] if r["is_anomaly"]]
    text = client.get("/metrics").text

    def value(sample: str) -> float:
        return float(re.search(rf"^{re.escape(sample)} (\S+)$", text, re.M).group(1))

    n = EVENTS - WARM_EVENTS
    assert value('tocsin_events_in_total{path="score",pipeline="transactions"}') == n
    assert value('tocsin_events_out_total{path="score",pipeline="transactions"}') == n
    assert value('tocsin_batch_latency_seconds_count{path="score",pipeline="transactions"}') == 1
    assert value('tocsin_event_decision_lag_seconds_count{path="score",pipeline="transactions"}') == 1
    for severity in ("info", "warning", "critical"):
        assert value(f'tocsin_anomalies_total{{pipeline="transactions",severity="{severity}"}}') == sum(r["severity"] == severity for r in flagged)
    assert value('tocsin_model_info{detector="isolation_forest",pipeline="transactions",status="warm",version="1"}') == 1
    assert "tocsin_checkpoint_age_seconds{pipeline=\"transactions\"} NaN" in text  # no checkpoint store in this app


def test_checkpoint_age_is_reported_once_a_checkpoint_exists(spec, auth, keys, warm_pipeline, tmp_path) -> None:
    from fastapi.testclient import TestClient

    from tocsin.api import create_app
    from tocsin.checkpoint.local import LocalCheckpointStore

    app = create_app(spec, auth, pipeline=warm_pipeline, checkpoints=LocalCheckpointStore(tmp_path / "ck"))
    with TestClient(app) as client:
        app.state.service.checkpoint()
        age = float(re.search(r'^tocsin_checkpoint_age_seconds\{pipeline="transactions"\} (\S+)$', client.get("/metrics").text, re.M).group(1))
        assert 0 <= age < 5
    # the next app resumes from that checkpoint
    fresh = create_app(spec, auth, checkpoints=LocalCheckpointStore(tmp_path / "ck"))
    with TestClient(fresh) as client:
        assert client.get("/health").json()["components"]["model"]["status"] == "ok"


def test_prometheus_config_scrapes_the_metrics_path() -> None:
    config = yaml.safe_load((DEPLOY / "prometheus.yml").read_text())
    job = config["scrape_configs"][0]
    assert job["metrics_path"] == "/metrics" and job["static_configs"][0]["targets"] == ["127.0.0.1:8000"]


def test_request_logs_are_json_lines(client, keys, caplog) -> None:
    with caplog.at_level(logging.INFO, logger="tocsin.api.request"):
        client.get("/v1/stats", headers=keys.headers("viewer"))
    record = next(r for r in caplog.records if r.name == "tocsin.api.request")
    line = json.loads(JsonFormatter().format(record))
    assert line["message"] == "request" and line["path"] == "/v1/stats" and line["status"] == 200
    assert line["role"] == "viewer" and line["level"] == "info" and line["duration_ms"] >= 0


def test_the_alert_budget_is_visible_in_metrics(client, keys, seeded) -> None:
    """The alert budget's current cut-off and the day's count are exported (issue: adaptation visible in metrics)."""
    metrics = client.get("/metrics").text
    for name in ("tocsin_alert_budget_cutoff", "tocsin_alerts_opened_today", "tocsin_alerts_active", "tocsin_alert_deliveries_pending"):
        assert f'{name}{{pipeline="transactions"}}' in metrics, name
    cutoff = next(line for line in metrics.splitlines() if line.startswith("tocsin_alert_budget_cutoff{"))
    assert 0.0 <= float(cutoff.split()[-1]) <= 1.0, "read from the live alert manager (NaN if it were not wired)"
