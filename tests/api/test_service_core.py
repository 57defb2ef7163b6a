"""The HTTP service on the driver core: what used to differ from the other drivers now does not.

- every accepted batch's outputs are written, clean ones too: the alert watermark moves, so quiet
  alerts resolve themselves on the HTTP path as in a stream;
- a checkpoint never lands between a request's pipeline step and its store write;
- the service's position is the journal seq of the last request folded in, and a restarted service
  numbers new requests after it.
"""

from __future__ import annotations

import threading
import time

from fastapi.testclient import TestClient
from sqlalchemy import text

from tocsin.api import create_app
from tocsin.api.service import CHECKPOINT_PARTITION, Service
from tocsin.checkpoint.local import LocalCheckpointStore
from tocsin.sources.journal import Journal
from tocsin.spec import parse_spec
from tests.api.conftest import EVENTS, WARM_EVENTS, spec_dict


def quiet_spec(tmp_path):
    data = spec_dict(f"sqlite:///{tmp_path / 'store.db'}", str(tmp_path / "ck"))
    data["alerting"] = {"quiet_period": "3h", "suppress_for": "6h"}
    data["store"]["scored_events"] = True
    return parse_spec(data)


def test_a_clean_batch_moves_the_alert_watermark_and_quiet_alerts_resolve(tmp_path, auth, keys, records, warm_state) -> None:
    spec = quiet_spec(tmp_path)
    app = create_app(spec, auth)
    analyst, viewer = keys.headers("analyst"), keys.headers("viewer")
    with TestClient(app) as client:
        app.state.service.pipeline.load_state_dict(warm_state)
        still_open: list[dict] = []
        for start in range(WARM_EVENTS, EVENTS, 50):  # until an alert is open at the end of a request
            stream = records[start : start + 50]
            assert client.post("/v1/score", json={"events": stream}, headers=analyst).status_code == 200
            alerts = client.get("/v1/alerts", params={"limit": 1000}, headers=viewer).json()["items"]
            still_open = [a for a in alerts if a["status"] == "open"]
            if still_open:
                break
        assert still_open, "the stream opens alerts"
        # ordinary events four hours (event time) after the last: clean, but they move the watermark (two of
        # them: the stream's clock is its second largest event time, so one event alone never moves it)
        end = max(r["ts"] for r in stream)
        ordinary = [r for r in records[WARM_EVENTS:EVENTS] if not r["is_fraud"]][-2:]  # two cards' usual payments
        late = [{**r, "tx_id": f"late-{i}", "ts": end + 4 * 3600 + i} for i, r in enumerate(ordinary, 1)]
        answer = client.post("/v1/score", json={"events": late}, headers=analyst).json()
        assert all(r["status"] == "scored" and not r["is_anomaly"] for r in answer["results"]), answer
        after = {a["id"]: a for a in client.get("/v1/alerts", params={"limit": 1000}, headers=viewer).json()["items"]}
        assert all(after[a["id"]]["status"] == "resolved" for a in still_open)
        assert app.state.service.store.fetch(text("SELECT event_id FROM scored_events WHERE event_id = 'late-1'")), \
            "clean events are stored too"


def test_a_checkpoint_waits_for_the_request_being_written(tmp_path, records, warm_state) -> None:
    spec = quiet_spec(tmp_path)
    checkpoints = LocalCheckpointStore(tmp_path / "ck" / spec.name)
    service = Service(spec, checkpoints=checkpoints, journal=Journal(tmp_path / "journal.sqlite"))
    service.pipeline.load_state_dict(warm_state)
    sink = service.core.store_sink
    inside_flush, release = threading.Event(), threading.Event()
    flush = sink.flush

    def slow_flush() -> None:
        inside_flush.set()
        assert release.wait(10)
        flush()

    sink.flush = slow_flush
    answers: list[dict] = []
    request = threading.Thread(target=lambda: answers.append(service.score(records[WARM_EVENTS:WARM_EVENTS + 500])))
    request.start()
    assert inside_flush.wait(10), "the request reached its store write"
    checkpointer = threading.Thread(target=service.checkpoint)
    checkpointer.start()
    checkpointer.join(0.5)
    assert checkpointer.is_alive(), "no checkpoint while the request's outputs are not written"
    assert checkpoints.load(CHECKPOINT_PARTITION) is None
    release.set()
    request.join(10)
    checkpointer.join(10)
    saved = checkpoints.load(CHECKPOINT_PARTITION)
    assert saved.offset == answers[0]["position"] == 1, "the position is the journal seq of the last request"
    assert saved.meta["events_seen"] == service.pipeline.events_seen
    assert service.store.count("scored_events") == answers[0]["scored"] > 0, "its outputs landed before the checkpoint"
    service.stop()


def test_a_restarted_service_numbers_requests_after_its_checkpoint(tmp_path, records, warm_state) -> None:
    spec = quiet_spec(tmp_path)
    checkpoints = LocalCheckpointStore(tmp_path / "ck" / spec.name)
    journal = tmp_path / "journal.sqlite"
    service = Service(spec, checkpoints=checkpoints, journal=Journal(journal))
    service.pipeline.load_state_dict(warm_state)
    service.start()
    positions = [service.accept(records[i : i + 100])["position"] for i in range(WARM_EVENTS, WARM_EVENTS + 300, 100)]
    assert positions == [1, 2, 3]
    assert service.wait_idle(10)
    service.stop()
    assert checkpoints.load(CHECKPOINT_PARTITION).offset == 3
    again = Service(spec, checkpoints=checkpoints, journal=Journal(journal))
    again.start()
    try:
        assert again.pipeline.events_seen == service.pipeline.events_seen, "resumed from the checkpoint"
        assert again.accept(records[WARM_EVENTS + 300 : WARM_EVENTS + 310])["position"] == 4
        deadline = time.monotonic() + 10
        while again.stream.position < 4 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert again.stream.position == 4
    finally:
        again.stop()


def test_dead_letters_from_requests_are_keyed_by_journal_position(tmp_path, records, warm_state) -> None:
    """A request's invalid events are stored under source "api" at ``seq << 20 | index``: the same keys
    when the journal is replayed, so a replay adds no dead letter twice."""
    spec = quiet_spec(tmp_path)
    service = Service(spec, checkpoints=LocalCheckpointStore(tmp_path / "ck" / spec.name), journal=Journal(tmp_path / "j.sqlite"))
    service.pipeline.load_state_dict(warm_state)
    good = records[WARM_EVENTS : WARM_EVENTS + 3]
    answer = service.score([good[0], {"tx_id": "broken"}, good[1], {"card_id": "c", "ts": "soon"}])
    assert [r["status"] for r in answer["results"]] == ["scored", "dead_letter", "scored", "dead_letter"]
    dead = sorted((d["source"], d["position"]) for d in service.store.dead_letters(limit=10))
    assert dead == [("api", (answer["position"] << 20) | 1), ("api", (answer["position"] << 20) | 3)]
    service.stop()


def test_an_api_attached_to_a_running_demo_accepts_no_events(tmp_path, auth, keys, records) -> None:
    """``tocsin demo`` serves its runner's stream: events posted to it would not be part of the runner's
    source (nor of its checkpoints), so they are refused with 409 and the runner's state is untouched."""
    from tocsin.engine.runner import Runner
    from tocsin.sources.simulator import SimulatorSource

    spec = quiet_spec(tmp_path)
    runner = Runner(spec, SimulatorSource(spec.source, max_events=3_000))
    runner.run()
    app = create_app(spec, auth, service=Service(spec, attach_to=runner))
    with TestClient(app) as client:
        for path, body in (("/v1/events", {"events": records[:5]}), ("/v1/score", {"event": records[0]})):
            answer = client.post(path, json=body, headers=keys.headers("analyst"))
            assert answer.status_code == 409 and "tocsin demo" in answer.json()["detail"], answer.text
        stats = client.get("/v1/stats", headers=keys.headers("viewer")).json()
        assert client.get("/health").json()["components"]["broker"]["status"] == "ok"
    assert runner.pipeline.events_seen == 3_000 and stats["queue_depth"] == 0


def test_every_single_event_score_is_kept_when_the_spec_keeps_scored_events(tmp_path, auth, keys, records, warm_state) -> None:
    """With ``store.scored_events: true`` every scored event is stored, one-event requests included (once,
    only batches holding an anomaly or a dead letter were written: 1 of 200 single-event scores was kept)."""
    spec = quiet_spec(tmp_path)
    app = create_app(spec, auth)
    with TestClient(app) as client:
        app.state.service.pipeline.load_state_dict(warm_state)
        ids = []
        for record in records[WARM_EVENTS : WARM_EVENTS + 200]:
            answer = client.post("/v1/score", json={"event": record}, headers=keys.headers("analyst")).json()
            assert answer["results"][0]["status"] == "scored"
            ids.append(record["tx_id"])
        stored = {row["event_id"] for row in app.state.service.store.fetch(text("SELECT event_id FROM scored_events"))}
        assert stored == set(ids)
