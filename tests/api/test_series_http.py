"""The series family over HTTP: POST /v1/score gives the embedded pipeline's scores for host metrics, and a
service that stops receiving a host's readings still flags it silent (its queue thread ticks while idle)."""

from __future__ import annotations

import time

import numpy as np
import yaml
from fastapi.testclient import TestClient

from tocsin.api import create_app
from tocsin.engine.pipeline import Pipeline
from tocsin.simulate import HostMetricsSimulator
from tocsin.simulate.daily import field_columns
from tocsin.spec import parse_spec


def host_spec(tmp_path):
    with open("examples/hosts.yaml") as handle:
        data = yaml.safe_load(handle)
    data["source"].update(hosts=6, report_every=1.0, incident_rate=0.0, warmup_days=0.0)
    data["detector"].update(warmup_events=100, train_window=100)
    data["store"]["url"] = f"sqlite:///{tmp_path / 'store.db'}"
    data["checkpoint"]["dir"] = str(tmp_path / "checkpoints")
    return parse_spec(data)


def readings(spec, n):
    simulator = HostMetricsSimulator.from_spec(spec.source)
    batch = simulator.generate(n)
    columns = field_columns(batch, simulator.FIELDS)
    return [dict(zip(columns, row)) for row in zip(*(c.tolist() for c in columns.values()))]


def test_score_over_http_equals_the_embedded_pipeline_and_an_idle_service_flags_silent_hosts(tmp_path, auth, keys) -> None:
    spec = host_spec(tmp_path)
    records = readings(spec, 1_200)  # 200 s of readings from 6 hosts, then nothing
    embedded = Pipeline(spec)
    expected = np.concatenate([np.nan_to_num(embedded.process_records(records[i:i + 300], source="x").score, nan=-1)
                               for i in range(0, len(records), 300)])
    with TestClient(create_app(spec, auth)) as client:
        got = []
        for i in range(0, len(records), 300):
            answer = client.post("/v1/score", json={"events": records[i:i + 300]}, headers=keys.headers("analyst"))
            assert answer.status_code == 200, answer.text
            got += [-1 if r["score"] is None else r["score"] for r in answer.json()["results"]]
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)
        deadline, silences = time.monotonic() + 20, []
        while time.monotonic() < deadline and len({a["entity"] for a in silences}) < 6:
            time.sleep(0.5)
            items = client.get("/v1/anomalies", params={"limit": 500}, headers=keys.headers("viewer")).json()["items"]
            silences = [a for a in items if a["detector"] == "silence"]
    assert {a["entity"] for a in silences} == {r["host"] for r in records}, "every host falls silent when the input stops"
    assert all("silent for" in a["explanation"][0]["text"] for a in silences)


def test_score_on_an_aggregating_pipeline_is_refused_with_the_way_to_send_events(tmp_path, auth, keys) -> None:
    with open("examples/requests.yaml") as handle:
        data = yaml.safe_load(handle)
    data["store"]["url"] = f"sqlite:///{tmp_path / 'store.db'}"
    data["checkpoint"]["dir"] = str(tmp_path / "checkpoints")
    event = {"id": "r1", "timestamp": 1_767_571_200.0, "service": "cart", "endpoint": "/v1/cart", "latency_ms": 12.0, "status": 200}
    with TestClient(create_app(parse_spec(data), auth)) as client:
        answer = client.post("/v1/score", json={"event": event}, headers=keys.headers("analyst"))
        assert answer.status_code == 409 and "POST /v1/events" in answer.json()["detail"], answer.text
        assert client.post("/v1/events", json={"events": [event]}, headers=keys.headers("analyst")).status_code == 202


def test_a_profiled_table_takes_rows_at_events_refuses_score_and_reports_an_added_field(tmp_path, auth, keys) -> None:
    """spec quality over HTTP: rows go to POST /v1/events; a field appearing in the second hour is a schema anomaly."""
    with open("examples/quality.yaml") as handle:
        data = yaml.safe_load(handle)
    data["store"]["url"] = f"sqlite:///{tmp_path / 'store.db'}"
    data["checkpoint"]["dir"] = str(tmp_path / "checkpoints")
    start = 1_767_571_200.0
    rows = [{"table": "orders", "ts": start + 30.0 * i, "amount": 10.0 + i % 7} for i in range(120)]
    rows += [{"table": "orders", "ts": start + 3_600.0 + 30.0 * i, "amount": 10.0 + i % 7, "coupon": "X"} for i in range(120)]
    rows += [{"table": "orders", "ts": start + 7_200.0 + 660.0}]  # the clock passes the second hour's end by 11 min
    with TestClient(create_app(parse_spec(data), auth)) as client:
        answer = client.post("/v1/score", json={"event": rows[0]}, headers=keys.headers("analyst"))
        assert answer.status_code == 409 and "POST /v1/events" in answer.json()["detail"], answer.text
        assert client.post("/v1/events", json={"events": rows}, headers=keys.headers("analyst")).status_code == 202
        deadline, schema = time.monotonic() + 20, []
        while time.monotonic() < deadline and not schema:
            time.sleep(0.3)
            items = client.get("/v1/anomalies", params={"limit": 100}, headers=keys.headers("viewer")).json()["items"]
            schema = [a for a in items if a["detector"] == "schema"]
    assert [(a["entity"], a["fields"]["change"], a["fields"]["field"]) for a in schema] == [("orders", "added", "coupon")]
