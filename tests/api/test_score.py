"""POST /v1/score and POST /v1/events: decisions per event, warm-up, dead letters, limits, storage."""

from __future__ import annotations

import time

from fastapi.testclient import TestClient

from tocsin.api import create_app
from tocsin.api.models import MAX_BATCH_EVENTS, ScoreResponse
from tests.api.conftest import EVENTS, WARM_EVENTS, WARMUP


def test_a_cold_pipeline_answers_warming_up_until_it_has_learned(spec, auth, keys, records) -> None:
    with TestClient(create_app(spec, auth)) as client:
        first = client.post("/v1/score", json={"event": records[0]}, headers=keys.headers("analyst")).json()
        assert first["model_status"] == "warming_up" and first["model_version"] == 0
        assert first["results"] == [{
            "index": 0, "id": records[0]["tx_id"], "entity": records[0]["card_id"], "status": "warming_up",
            "score": None, "score_100": None, "is_anomaly": False, "severity": None, "explanation": [], "reason": None,
        }]
        rest = client.post("/v1/score", json={"events": records[1 : WARMUP + 10]}, headers=keys.headers("analyst")).json()
        statuses = [r["status"] for r in rest["results"]]
        assert statuses.count("warming_up") == WARMUP - 1 and statuses[-10:] == ["scored"] * 10
        assert rest["model_status"] == "warm" and rest["model_version"] == 1
        assert client.get("/health").json()["components"]["model"]["status"] == "ok"


def test_every_event_gets_a_decision_in_request_order(client, keys, records) -> None:
    batch = records[WARM_EVENTS : WARM_EVENTS + 2_000]
    answer = client.post("/v1/score", json={"events": batch}, headers=keys.headers("analyst"))
    assert answer.status_code == 200
    body = ScoreResponse.model_validate(answer.json())  # the fast JSON path still matches the documented schema
    assert [r.id for r in body.results] == [e["tx_id"] for e in batch]
    assert all(r.status == "scored" and 0 <= r.score <= 1 and abs(r.score_100 - r.score * 100) <= 0.006 for r in body.results)
    flagged = [r for r in body.results if r.is_anomaly]
    assert flagged and all(r.severity in ("info", "warning", "critical") and r.explanation for r in flagged)
    assert all(r.severity is None and not r.explanation for r in body.results if not r.is_anomaly)


def test_bad_events_come_back_as_dead_letters_beside_good_ones(client, keys, records) -> None:
    good = records[WARM_EVENTS]
    bad_amount = {**records[WARM_EVENTS + 1], "amount": "lots"}
    no_key = {k: v for k, v in records[WARM_EVENTS + 2].items() if k != "card_id"}
    answer = client.post("/v1/score", json={"events": [bad_amount, good, no_key]}, headers=keys.headers("analyst"))
    assert answer.status_code == 200
    results = answer.json()["results"]
    assert [r["status"] for r in results] == ["dead_letter", "scored", "dead_letter"]
    assert "amount" in results[0]["reason"] and "card_id" in results[2]["reason"]
    assert answer.json()["dead_letters"] == 2
    assert client.get("/metrics").text.count('tocsin_dead_letters_total{path="score",pipeline="transactions"} 2.0') == 1


def test_422_when_every_event_is_bad_or_the_body_is_invalid_names_the_field(client, keys, records) -> None:
    headers = keys.headers("analyst")
    all_bad = client.post("/v1/score", json={"events": [{"tx_id": "x"}, {"amount": 1}]}, headers=headers)
    assert all_bad.status_code == 422
    assert all_bad.json()["detail"][0]["field"] == "events.0" and "every event is invalid" in all_bad.json()["detail"][0]["msg"]
    cases = {
        "events": {"events": []},
        "events.0": {"events": [1]},
        "extra": {"events": [records[0]], "extra": 1},
    }
    for field, body in cases.items():
        answer = client.post("/v1/score", json=body, headers=headers)
        assert answer.status_code == 422, body
        fields = [d["field"] for d in answer.json()["detail"]]
        assert field in fields, (field, answer.json())
        assert all(d["msg"].startswith(d["field"]) for d in answer.json()["detail"])
    neither = client.post("/v1/score", json={}, headers=headers)
    assert neither.status_code == 422 and "exactly one of `event` or `events`" in neither.text
    broken = client.post("/v1/score", content=b'{"events": [', headers={**headers, "Content-Type": "application/json"})
    assert broken.status_code == 422 and broken.json()["detail"][0]["type"] == "json_invalid"


def test_batch_size_and_body_size_limits(client, keys, records, spec, auth, warm_pipeline) -> None:
    too_many = client.post("/v1/score", json={"events": [records[0]] * (MAX_BATCH_EVENTS + 1)}, headers=keys.headers("analyst"))
    assert too_many.status_code == 422 and too_many.json()["detail"][0]["field"] == "events"
    with TestClient(create_app(spec, auth, pipeline=warm_pipeline, max_body_bytes=10_000)) as small:
        answer = small.post("/v1/score", json={"events": records[:200]}, headers=keys.headers("analyst"))
        assert answer.status_code == 413 and "limit" in answer.json()["detail"]
        chunked = small.post("/v1/score", content=iter([b'{"events": [' + b"1," * 6_000, b"1]}"]),
                             headers={**keys.headers("analyst"), "Content-Type": "application/json"})
        assert chunked.status_code == 413


def test_scored_anomalies_are_stored_once_per_event_id(client, keys, records) -> None:
    batch = records[WARM_EVENTS:EVENTS]
    flagged = {r["id"] for r in client.post("/v1/score", json={"events": batch}, headers=keys.headers("analyst")).json()["results"] if r["is_anomaly"]}
    stored = client.get("/v1/anomalies", params={"limit": 1000}, headers=keys.headers("viewer")).json()["items"]
    assert flagged and {a["event_id"] for a in stored} == flagged
    service = client.app.state.service
    before = service.store.count("anomalies")
    client.post("/v1/score", json={"events": batch}, headers=keys.headers("analyst"))  # a replay: same ids
    stored_again = {a["event_id"] for a in client.get("/v1/anomalies", params={"limit": 1000}, headers=keys.headers("viewer")).json()["items"]}
    assert service.store.count("anomalies") >= before and len(stored_again) == service.store.count("anomalies")


def test_queued_events_are_processed_by_the_runner_thread(client, keys, records) -> None:
    batch = records[WARM_EVENTS:EVENTS]
    answer = client.post("/v1/events", json={"events": batch}, headers=keys.headers("analyst"))
    assert answer.status_code == 202
    assert answer.json()["accepted"] == len(batch) and answer.json()["ids"] == [e["tx_id"] for e in batch]
    service = client.app.state.service
    assert service.wait_idle(30)
    deadline = time.monotonic() + 10
    while service.activity.snapshot()["events"] < len(batch) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert service.activity.snapshot()["events"] == len(batch)
    assert client.get("/v1/anomalies", headers=keys.headers("viewer")).json()["items"]
    metrics = client.get("/metrics").text
    assert f'tocsin_events_out_total{{path="events",pipeline="transactions"}} {float(len(batch))}' in metrics


def test_a_full_queue_answers_503(spec, auth, keys, records, warm_pipeline) -> None:
    app = create_app(spec, auth, pipeline=warm_pipeline, queue_max_events=5)
    with TestClient(app) as client:
        app.state.service.lock.acquire()  # hold the pipeline so the queue cannot drain
        try:
            assert client.post("/v1/events", json={"events": records[:5]}, headers=keys.headers("analyst")).status_code == 202
            import time as _t
            _t.sleep(0.1)
            full = client.post("/v1/events", json={"events": records[5:11]}, headers=keys.headers("analyst"))
            assert full.status_code == 503 and full.headers["retry-after"] == "1"
        finally:
            app.state.service.lock.release()
