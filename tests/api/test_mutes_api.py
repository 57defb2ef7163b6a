"""Feedback on alerts and mutes through the HTTP API: who may do what, what is stored, and that the
service's own streams obey a mute the moment it is set (the runner's side: tests/alerting/test_mutes.py)."""

from __future__ import annotations

import pytest

from tocsin.alerting.patterns import families


def test_a_verdict_on_an_alert_labels_its_anomalies_and_mutes_its_pattern(client, keys, seeded) -> None:
    viewer, analyst = keys.headers("viewer"), keys.headers("analyst")
    alert = seeded["alerts"][0]
    service = client.app.state.service
    assert client.post("/v1/feedback", json={"alert_id": alert["id"], "label": "false_positive", "mute": {"days": 3}},
                       headers=viewer).status_code == 403, "viewers give no verdicts"
    answer = client.post("/v1/feedback", json={"alert_id": alert["id"], "label": "false_positive", "note": "staff card",
                                               "mute": {"days": 3}}, headers=analyst)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["anomalies"] == alert["count"] and body["alert_id"] == alert["id"]
    mute = body["mute"]
    assert (mute["entity"], mute["pattern"]) == (alert["entity"], alert["pattern"]) and mute["author"] == body["author"]
    assert mute["until"] - max(mute["created_at"], alert["last_event_time"]) == pytest.approx(3 * 86_400)
    assert len(service.core.mutes) == 1, "the service's own streams obey it at once"
    assert service.core.mutes.match(alert["entity"], [alert["pattern"]], alert["last_event_time"]) is not None

    shown = client.get(f"/v1/alerts/{alert['id']}", headers=viewer).json()
    assert shown["status"] == "resolved" and shown["resolved_by"] == body["author"]
    assert [(m["id"], m["until"]) for m in shown["mutes"]] == [(mute["id"], mute["until"])]
    assert [(v["label"], v["author"], v["anomalies"], v["note"]) for v in shown["verdicts"]] == [
        ("false_positive", body["author"], alert["count"], "staff card")], "the alert shows the verdict given on it"
    listed = client.get("/v1/alerts", params={"limit": 1000}, headers=viewer).json()["items"]
    assert [m["id"] for a in listed if a["id"] == alert["id"] for m in a["mutes"]] == [mute["id"]]
    labelled = client.get("/v1/anomalies", params={"entity": alert["entity"], "limit": 1000}, headers=viewer).json()["items"]
    assert sum(a["label"] == 0 for a in labelled) == alert["count"]

    assert [m["id"] for m in client.get("/v1/mutes", params={"in_force": True}, headers=viewer).json()["items"]] == [mute["id"]]
    assert client.delete(f"/v1/mutes/{mute['id']}", headers=viewer).status_code == 403
    lifted = client.delete(f"/v1/mutes/{mute['id']}", headers=analyst)
    assert lifted.status_code == 200 and lifted.json()["lifted_by"] == body["author"]
    assert len(service.core.mutes) == 0 and client.get("/v1/mutes", params={"in_force": True}, headers=viewer).json()["items"] == []
    assert client.delete(f"/v1/mutes/{mute['id']}", headers=analyst).status_code == 404, "lifted already"


def test_a_verdict_on_one_anomaly_mutes_its_strongest_pattern(client, keys, seeded) -> None:
    anomaly = seeded["anomalies"][0]
    answer = client.post("/v1/feedback", json={"event_id": anomaly["event_id"], "label": "false_positive",
                                               "mute": {"days": 1, "scope": "entity_pattern"}}, headers=keys.headers("analyst"))
    assert answer.status_code == 200, answer.text
    assert answer.json()["mute"]["pattern"] == families(anomaly["explanation"])[0]
    assert answer.json()["anomalies"] == 1


def test_bad_verdicts_name_the_field(client, keys, seeded) -> None:
    analyst = keys.headers("analyst")
    both = client.post("/v1/feedback", json={"alert_id": 1, "event_id": "x", "label": "false_positive"}, headers=analyst)
    assert both.status_code == 422 and "exactly one of `event_id`" in both.text
    muted_tp = client.post("/v1/feedback", json={"alert_id": seeded["alerts"][0]["id"], "label": "true_positive", "mute": {"days": 1}},
                           headers=analyst)
    assert muted_tp.status_code == 422 and "label: false_positive" in muted_tp.text
    forever = client.post("/v1/feedback", json={"alert_id": 1, "label": "false_positive", "mute": {"days": 1_000}}, headers=analyst)
    assert forever.status_code == 422 and forever.json()["detail"][0]["field"] == "mute.days"
    scope = client.post("/v1/feedback", json={"alert_id": 1, "label": "false_positive", "mute": {"days": 1, "scope": "world"}}, headers=analyst)
    assert scope.status_code == 422 and scope.json()["detail"][0]["field"] == "mute.scope"
    assert client.post("/v1/feedback", json={"alert_id": 999_999, "label": "false_positive"}, headers=analyst).status_code == 404
