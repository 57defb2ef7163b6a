"""Mutes: a false-positive verdict with a scope stops the next matching alert, and nothing is lost.

The manager's rule on scripted anomalies; then the whole path: a card-testing attack run by the embedded
runner opens an alert, an analyst marks it a false positive with a mute through the HTTP API, and the
card's next attack, run by the runner resuming from its checkpoint, is scored and stored but opens no
alert (the same run without the mute opens one)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from tests.alerting.helpers import DAY, T0, BatchSource, burst, card_testing_stream
from tests.alerting.test_runner_alerts import ALERTING, small_spec
from tocsin.alerting.manager import AlertManager
from tocsin.alerting.mutes import Mute, MuteBook, add_mute, lift_mute, mute_rows
from tocsin.alerting.outbox import alert_documents
from tocsin.api import AuthConfig, KeyStore, create_app
from tocsin.batch import EventBatch
from tocsin.checkpoint.local import LocalCheckpointStore
from tocsin.engine.runner import Runner
from tocsin.spec.alerting import AlertingSpec
from tocsin.store.sql import Store

RATE = ("count_1m", "velocity_per_min_10m")
AMOUNT = ("amount_zscore_30d",)


def manager() -> AlertManager:
    return AlertManager(AlertingSpec(window="1h", quiet_period="30m", suppress_for="1d"), pipeline="tx")


def test_a_muted_entity_and_pattern_opens_no_alert_while_others_do() -> None:
    alerts = manager()
    alerts.mutes.replace([Mute(1, "card7", "rate", since=T0, until=T0 + DAY)])
    changes = alerts.observe(burst("card7", 50, T0 + 10, features=RATE) + burst("card8", 50, T0 + 10, first_id=100, features=RATE))
    assert {a["entity"] for a in changes.alerts} == {"card8"}, "the unmuted card alerts, the muted one does not"
    assert alerts.muted == 50
    other = alerts.observe(burst("card7", 50, T0 + 5_000, first_id=200, features=AMOUNT))
    assert [a["entity"] for a in other.alerts] == ["card7"], "another pattern of the same card is not muted"


def test_a_mute_ends_in_event_time_and_is_counted_across_a_checkpoint() -> None:
    alerts = manager()
    alerts.mutes.replace([Mute(1, "card7", None, since=T0, until=T0 + 3_600)])
    assert not alerts.observe(burst("card7", 20, T0 + 60)).alerts
    restored = manager()
    restored.load_state_dict(alerts.state_dict())
    assert restored.muted == 20, "the count of muted anomalies survives a restart"
    after = restored.observe(burst("card7", 20, T0 + 3_600, first_id=100))
    assert [a["entity"] for a in after.alerts] == ["card7"], "past `until` the entity alerts again"


def test_the_book_matches_entity_pattern_and_time() -> None:
    book = MuteBook([Mute(1, "a", "rate", 10.0, 20.0), Mute(2, "b", None, 10.0, 20.0)])
    assert book.match("a", ["amount", "rate"], 10.0).id == 1
    assert book.match("a", ["amount"], 15.0) is None and book.match("a", ["rate"], 9.9) is None
    assert book.match("b", ["anything"], 19.9).id == 2 and len(book) == 2


def test_mutes_are_stored_listed_and_lifted(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 's.db'}")
    row = add_mute(store, "tx", entity="card7", pattern="rate", since=1.0, until=2.0, author="ada", alert_id=3)
    assert [r["id"] for r in mute_rows(store, "tx", not_lifted=True)] == [row["id"]]
    assert lift_mute(store, "tx", row["id"], by="bob") and not lift_mute(store, "tx", row["id"], by="bob")
    assert mute_rows(store, "tx", not_lifted=True) == []
    (lifted,) = mute_rows(store, "tx")
    assert lifted["lifted_by"] == "bob" and lifted["author"] == "ada" and lifted["alert_id"] == 3
    store.close()


# --- the whole path: runner, API verdict, runner again ------------------------------------------


def second_attack(events: EventBatch, card: str, after: float) -> EventBatch:
    """The card-testing burst again on the same card from ``after``, now with large amounts at new
    merchants (the same burst again scores ~0.97: the card's history has learnt it)."""
    first = events.take(np.flatnonzero(np.char.startswith(events.ids.astype(str), "ct")))
    again = first.take(np.arange(len(first)))
    again.ids = np.array([f"again{i}" for i in range(len(first))], dtype=object)
    again.times = after + (first.times - first.times[0])
    again.numeric["amount"] = np.round(np.random.default_rng(2).uniform(3_000, 9_000, len(first)), 2)
    again.categorical["merchant_id"] = np.array([f"m-again-{i % 40}" for i in range(len(first))], dtype=object)
    assert (again.keys == card).all()
    return again


@pytest.fixture(scope="module")
def two_attacks():
    events, card = card_testing_stream()
    later = second_attack(events, card, float(events.times[-1]) + 2 * 3_600)  # the first alert has resolved by then
    stream = EventBatch.concat([events, later])
    stream.positions = np.arange(len(stream), dtype=np.int64)
    return stream, card, len(events)


def run_twice(tmp_path: Path, name: str, two_attacks, mute: dict | None) -> tuple[Store, list[dict], list[dict], dict]:
    """Run to the end of the first attack, give the verdict through the API (muting when ``mute``), then
    resume over the second attack. Returns the store, the card's alerts after each run, the verdict."""
    stream, card, split = two_attacks
    spec = small_spec(tmp_path, name)
    checkpoints = LocalCheckpointStore(Path(spec.checkpoint.dir) / spec.name)
    store = Store(spec.store.url)
    Runner(spec, BatchSource(stream.take(slice(0, split))), store=store, checkpoints=checkpoints, alerting=ALERTING).run()
    first = [a for a in alert_documents(store, spec.name) if a["entity"] == card]
    assert len(first) == 1, first

    auth = AuthConfig(keys=KeyStore(tmp_path / f"{name}-keys.json"), jwt_secret="s" * 40)
    analyst = {"X-API-Key": auth.keys.create("analyst", "test")[0]}
    with TestClient(create_app(spec.model_copy(update={"alerting": ALERTING}), auth)) as client:
        body = {"alert_id": first[0]["id"], "label": "false_positive", "note": "our own test card"}
        if mute is not None:
            body["mute"] = mute
        verdict = client.post("/v1/feedback", json=body, headers=analyst)
        assert verdict.status_code == 200, verdict.text
        verdict = verdict.json()
        shown = client.get(f"/v1/alerts/{first[0]['id']}", headers=analyst).json()
    resumed = Runner(spec, BatchSource(stream), store=store, checkpoints=checkpoints, alerting=ALERTING)
    resumed.run()
    assert resumed.stats.events == len(stream) - split, "it resumed after the first attack"
    second = [a for a in alert_documents(store, spec.name) if a["entity"] == card]
    return store, first, second, {"verdict": verdict, "shown": shown, "runner": resumed}


def test_a_mute_set_through_the_api_stops_the_runners_next_alert(tmp_path: Path, two_attacks) -> None:
    stream, card, split = two_attacks
    store, first, second, got = run_twice(tmp_path, "muted", two_attacks, {"days": 7, "scope": "entity"})
    verdict, shown = got["verdict"], got["shown"]
    assert verdict["anomalies"] == first[0]["count"], "an alert's verdict labels every anomaly it grouped"
    labels = {a["event_id"]: a["label"] for a in store.anomalies(pipeline="transactions", entity=card, limit=10_000)}
    assert sum(v == 0 for v in labels.values()) == first[0]["count"]
    mute = verdict["mute"]
    assert mute["entity"] == card and mute["pattern"] is None and mute["author"] and mute["author"] == verdict["author"]
    assert mute["until"] >= stream.times[split - 1] + 7 * DAY - 1
    assert shown["status"] == "resolved" and [m["id"] for m in shown["mutes"]] == [mute["id"]], "the alert shows its mute"

    again = [e for e, _ in labels.items() if e.startswith("again")]
    assert len(again) >= 10, "the muted attack is still scored and stored"
    assert [a["id"] for a in second] == [a["id"] for a in first], "and opens no alert"
    assert got["runner"].alerts.muted >= len(again)
    store.close()


def test_without_the_mute_the_same_verdict_does_not_stop_the_next_alert(tmp_path: Path, two_attacks) -> None:
    stream, card, split = two_attacks
    store, _first, second, got = run_twice(tmp_path, "unmuted", two_attacks, None)
    assert got["verdict"]["mute"] is None and got["shown"]["mutes"] == []
    again = [a for a in store.anomalies(pipeline="transactions", entity=card, limit=10_000) if a["event_id"].startswith("again")]
    assert len(again) >= 10
    assert len(second) == 2 and second[1]["window_start"] >= stream.times[split], "the second attack is a new alert"
    store.close()


def test_a_mute_needs_a_false_positive_verdict_and_one_target() -> None:
    from pydantic import ValidationError

    from tocsin.api.models import FeedbackIn

    with pytest.raises(ValidationError, match="`mute` needs `label: false_positive`"):
        FeedbackIn(alert_id=1, label="true_positive", mute={"days": 1})
    with pytest.raises(ValidationError, match="exactly one of `event_id`"):
        FeedbackIn(alert_id=1, event_id="e1", label="false_positive")
    with pytest.raises(ValidationError, match="days"):
        FeedbackIn(alert_id=1, label="false_positive", mute={"days": 0})
