"""Events with wild times mixed into a live stream change no alert: they are dead letters naming `ts`.

Once, one event whose `ts` was in milliseconds moved the alert watermark far into the future: every
open alert resolved, every later alert was born resolved, and the poisoned state survived a restart.
"""

from __future__ import annotations

import random

from fastapi.testclient import TestClient

from tocsin.api import create_app
from tests.api.conftest import EVENTS, WARM_EVENTS

DAY = 86_400.0


def alert_story(client, headers) -> list[tuple]:
    alerts = client.get("/v1/alerts", params={"limit": 1000}, headers=headers).json()["items"]
    return sorted((a["alert_key"], a["status"], a["count"], a["severity"]) for a in alerts)


def test_out_of_window_times_change_no_alert_and_are_dead_lettered(spec, auth, keys, records, warm_state) -> None:
    stream = records[WARM_EVENTS:EVENTS]
    rng = random.Random(5)
    wild = [1_767_444_200_000.0, 0.0, -1e12, 1e15, 1e300, "late", "early"]
    poisoned = list(stream)
    poison_ids = []
    for i, kind in enumerate(wild * 3):
        at = rng.randrange(200, len(poisoned))
        base = poisoned[at - 1]
        ts = base["ts"] + 2 * DAY if kind == "late" else base["ts"] - 60 * DAY if kind == "early" else kind
        poison_ids.append(f"poison-{i}")
        poisoned.insert(at, {**base, "tx_id": poison_ids[-1], "ts": ts, "amount": 9_999.0})

    stories = []
    for events in (stream, poisoned):
        app = create_app(spec.model_copy(update={"store": spec.store.model_copy(update={"url": f"{spec.store.url}-{len(stories)}"})}), auth)
        with TestClient(app) as client:
            app.state.service.pipeline.load_state_dict(warm_state)
            for start in range(0, len(events), 300):
                answer = client.post("/v1/events", json={"events": events[start : start + 300]}, headers=keys.headers("analyst"))
                assert answer.status_code == 202, answer.text
            assert app.state.service.wait_idle(60)
            stories.append(alert_story(client, keys.headers("viewer")))
            if events is poisoned:
                reasons = [d["reason"] for d in app.state.service.store.dead_letters(limit=1000)]
                # the synchronous path: one wild event alone is a 422 naming ts
                single = client.post("/v1/score", json={"event": {**stream[-1], "tx_id": "ms", "ts": 1_767_444_200_000}},
                                     headers=keys.headers("analyst"))
    clean, with_poison = stories
    assert clean and clean == with_poison, "the wild times changed no alert: not its status, count or severity"
    assert any(status == "open" for _, status, _, _ in clean), "some alerts are still open at the end"
    assert len(reasons) == len(poison_ids) and all(r.startswith("field `ts`") for r in reasons), reasons
    assert single.status_code == 422 and "field `ts`" in single.json()["detail"][0]["msg"], single.text
    assert "epoch_ms" in single.json()["detail"][0]["msg"], "a millisecond stamp gets the hint"
