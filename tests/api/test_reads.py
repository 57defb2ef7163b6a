"""Anomalies and alerts (filters, cursor pages), alert lifecycle, feedback, entities, stats, health."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tocsin.api import create_app
from tocsin.store.sql import StoreUnavailable


def pages(client, path, params, headers):
    items, cursor, n = [], None, 0
    while True:
        body = client.get(path, params={**params, **({"cursor": cursor} if cursor else {})}, headers=headers).json()
        items += body["items"]
        n += 1
        cursor = body["next_cursor"]
        if cursor is None:
            return items, n


def test_cursor_pages_walk_every_anomaly_once_newest_first(client, keys, seeded) -> None:
    everything = seeded["anomalies"]
    items, n_pages = pages(client, "/v1/anomalies", {"limit": 7}, keys.headers("viewer"))
    assert [a["id"] for a in items] == [a["id"] for a in everything] and n_pages == -(-len(everything) // 7)
    times = [a["event_time"] for a in items]
    assert times == sorted(times, reverse=True)


def test_anomaly_filters(client, keys, seeded) -> None:
    viewer = keys.headers("viewer")
    anomalies = seeded["anomalies"]
    entity = anomalies[0]["entity"]
    by_entity = client.get("/v1/anomalies", params={"entity": entity, "limit": 1000}, headers=viewer).json()["items"]
    assert by_entity and all(a["entity"] == entity for a in by_entity)
    assert len(by_entity) == sum(a["entity"] == entity for a in anomalies)
    severe = client.get("/v1/anomalies", params=[("severity", "warning"), ("severity", "critical"), ("limit", 1000)], headers=viewer).json()["items"]
    assert len(severe) == sum(a["severity"] in ("warning", "critical") for a in anomalies)
    middle = sorted(a["event_time"] for a in anomalies)[len(anomalies) // 2]
    since = client.get("/v1/anomalies", params={"since": middle, "limit": 1000}, headers=viewer).json()["items"]
    until = client.get("/v1/anomalies", params={"until": middle, "limit": 1000}, headers=viewer).json()["items"]
    assert len(since) + len(until) == len(anomalies) and all(a["event_time"] >= middle for a in since)
    bad = client.get("/v1/anomalies", params={"severity": "dire"}, headers=viewer)
    assert bad.status_code == 422 and bad.json()["detail"][0]["field"] == "severity.0"
    cursor = client.get("/v1/anomalies", params={"cursor": "nonsense"}, headers=viewer)
    assert cursor.status_code == 422 and cursor.json()["detail"][0]["field"] == "cursor"
    limit = client.get("/v1/anomalies", params={"limit": 0}, headers=viewer)
    assert limit.status_code == 422 and limit.json()["detail"][0]["field"] == "limit"


def test_alert_filters_and_lifecycle(client, keys, seeded) -> None:
    viewer, analyst = keys.headers("viewer"), keys.headers("analyst")
    alert = seeded["alerts"][0]
    assert alert["status"] == "open"
    detail = client.get(f"/v1/alerts/{alert['id']}", headers=viewer).json()
    assert detail["pattern"] and detail["window_start"] <= detail["last_event_time"], "grouped alerts say what they group"
    assert detail["count"] >= 1 and detail["deliveries"] == [], "no routes in this spec: stored, delivered nowhere"
    acked = client.post(f"/v1/alerts/{alert['id']}/ack", headers=analyst).json()
    assert acked["status"] == "acknowledged" and acked["updated_at"] >= alert["updated_at"]
    only_acked = client.get("/v1/alerts", params={"status": "acknowledged"}, headers=viewer).json()["items"]
    assert [a["id"] for a in only_acked] == [alert["id"]]
    opened = client.get("/v1/alerts", params={"status": "open", "limit": 1000}, headers=viewer).json()["items"]
    assert len(opened) == len(seeded["alerts"]) - 1
    assert client.post(f"/v1/alerts/{alert['id']}/resolve", headers=analyst).json()["status"] == "resolved"
    assert client.get(f"/v1/alerts/{alert['id']}", headers=viewer).json()["status"] == "resolved"
    stats = client.get("/v1/stats", headers=viewer).json()
    assert stats["alerts_by_status"]["resolved"] == 1 and sum(stats["alerts_by_severity"].values()) == len(seeded["alerts"])
    assert client.post("/v1/alerts/999999/ack", headers=analyst).status_code == 404
    assert client.get("/v1/alerts/999999", headers=viewer).status_code == 404


def test_feedback_labels_the_anomaly(client, keys, seeded) -> None:
    anomaly = seeded["anomalies"][0]
    answer = client.post("/v1/feedback", json={"event_id": anomaly["event_id"], "label": "false_positive", "note": "known customer"},
                         headers=keys.headers("analyst"))
    assert answer.status_code == 200 and answer.json()["label"] == "false_positive"
    again = client.get("/v1/anomalies", params={"entity": anomaly["entity"], "limit": 1000}, headers=keys.headers("viewer")).json()["items"]
    assert next(a for a in again if a["event_id"] == anomaly["event_id"])["label"] == 0
    assert client.app.state.service.store.feedback(event_id=anomaly["event_id"])[0]["note"] == "known customer"
    missing = client.post("/v1/feedback", json={"event_id": "no-such-event", "label": "true_positive"}, headers=keys.headers("analyst"))
    assert missing.status_code == 404
    bad = client.post("/v1/feedback", json={"event_id": "x", "label": "maybe"}, headers=keys.headers("analyst"))
    assert bad.status_code == 422 and bad.json()["detail"][0]["field"] == "label"


def test_entity_state_and_recent_events(client, keys, seeded, records) -> None:
    anomaly = seeded["anomalies"][0]
    entity = client.get(f"/v1/entities/{anomaly['entity']}", headers=keys.headers("viewer")).json()
    assert entity["key"] == anomaly["entity"]
    assert {"count_1m", "amount_mean_30d", "last_time"} <= set(entity["state"])
    recent = entity["recent_events"]
    assert recent and [e["event_time"] for e in recent] == sorted(e["event_time"] for e in recent)
    assert anomaly["event_id"] in {e["event_id"] for e in recent if e["is_anomaly"]}
    assert set(recent[0]["values"]) == {"amount", "merchant_id", "merchant_category", "city", "channel"}
    assert anomaly["event_id"] in {a["event_id"] for a in entity["anomalies"]}
    assert client.get("/v1/entities/nobody", headers=keys.headers("viewer")).status_code == 404


def test_stats_and_pipelines(client, keys, seeded) -> None:
    stats = client.get("/v1/stats", headers=keys.headers("viewer")).json()
    scored = seeded["score"]["scored"]
    assert stats["events"] == scored and stats["anomalies"] == len(seeded["anomalies"])
    assert abs(stats["anomaly_rate"] - len(seeded["anomalies"]) / scored) < 1e-9
    assert stats["series"] and stats["events_per_s"] > 0 and stats["model_status"] == "warm"
    pipelines = client.get("/v1/pipelines", headers=keys.headers("admin")).json()
    assert pipelines[0]["name"] == "transactions" and pipelines[0]["event_schema"]["key_field"] == "card_id"


def test_health_is_503_when_the_store_is_down(client, monkeypatch) -> None:
    healthy = client.get("/health")
    assert healthy.status_code == 200 and set(healthy.json()["components"]) == {"store", "broker", "cache", "model"}
    def not_writable() -> None:
        raise StoreUnavailable("the database is read-only")

    monkeypatch.setattr(client.app.state.service.store, "check_writable", not_writable)
    down = client.get("/health")
    assert down.status_code == 503 and down.json()["status"] == "degraded"
    assert down.json()["components"]["store"]["status"] == "down"


def test_a_warming_model_is_not_degraded(spec, auth) -> None:
    with TestClient(create_app(spec, auth)) as client:
        answer = client.get("/health")
        assert answer.status_code == 200 and answer.json()["components"]["model"]["status"] == "warming_up"
