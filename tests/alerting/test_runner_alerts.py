"""The real pipeline and alert path (Runner -> Pipeline -> AlertManager -> store + outbox) on a scripted
card-testing attack: 500 anomalous events on one card make one grouped alert carrying the count,
not 500 alerts; and a crash after writes past the last checkpoint replays to the same alerts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tocsin.spec.alerting import AlertingSpec
from tocsin.alerting.outbox import alert_documents, delivery_rows
from tocsin.checkpoint.local import LocalCheckpointStore
from tocsin.engine.runner import Runner
from tocsin.spec import parse_spec
from tocsin.store.sql import Store

from tests.alerting.helpers import BURST, BatchSource, card_testing_stream

REFERENCE = Path(__file__).resolve().parents[2] / "src" / "tocsin" / "specs" / "transactions.yaml"  # what `tocsin demo` runs
ALERTING = AlertingSpec.model_validate({
    "window": "1h", "quiet_period": "30m",
    "channels": {"db": {"kind": "store"}},
    "routes": [{"match": {"severity": ["critical"]}, "channels": ["db"]}],
    "rules": [{"min_count": 20, "severity": "critical"}],
})


def small_spec(tmp_path: Path, name: str):
    data = yaml.safe_load(REFERENCE.read_text())
    data["source"].update({"users": 300, "warmup_days": 0.5, "fraud_rate": 0.0})
    data["detector"].update({"warmup_events": 2_000, "refit_every": 3_000, "train_window": 5_000})
    data["detector"]["params"]["n_estimators"] = 50
    data["calibration"]["window"] = 5_000
    data["runner"]["batch_size"] = 500
    data["store"]["url"] = f"sqlite:///{tmp_path / name}.db"
    data["checkpoint"]["dir"] = str(tmp_path / f"{name}-checkpoints")
    return parse_spec(data)


@pytest.fixture(scope="module")
def stream():
    return card_testing_stream()


def run(spec, events, checkpoints=False, **kw):
    store = Store(spec.store.url)
    runner = Runner(spec, BatchSource(events), store=store, checkpoints=checkpoints, alerting=ALERTING, **kw)
    runner.run()
    return runner, store


def test_a_card_testing_attack_of_500_events_is_one_alert_with_the_count(tmp_path, stream) -> None:
    events, card = stream
    runner, store = run(small_spec(tmp_path, "demo"), events)
    flagged = {a["event_id"] for a in store.anomalies(pipeline="transactions", entity=card, limit=10_000)}
    burst_flagged = {e for e in flagged if e.startswith("ct")}
    assert len(burst_flagged) >= 0.9 * BURST, len(burst_flagged)  # the detector sees the attack
    card_alerts = alert_documents(store, "transactions")
    card_alerts = [a for a in card_alerts if a["entity"] == card]
    assert len(card_alerts) == 1, [(a["alert_key"], a["count"]) for a in card_alerts]
    (alert,) = card_alerts
    # the count is every anomaly of that card inside the alert's window (the burst, plus any info ones around it)
    assert alert["count"] >= len(burst_flagged)
    assert alert["count"] == len([e for e in flagged if alert["window_start"] <= _time(store, e) <= alert["last_event_time"]])
    assert alert["severity"] == "critical"  # raised by the min_count rule
    assert [d["channel"] for d in alert["deliveries"]] == ["db"] and alert["deliveries"][0]["status"] == "delivered"
    total_alerts = store.count("alerts", "transactions")
    assert total_alerts < runner.stats.anomalies / 2  # grouping, not one alert per anomaly
    store.close()


def _time(store: Store, event_id: str) -> float:
    return next(a["event_time"] for a in store.anomalies(pipeline="transactions", limit=20_000) if a["event_id"] == event_id)


class FreezingCheckpoints(LocalCheckpointStore):
    """Stops saving after ``keep`` checkpoints: the run goes on writing, as a process does right
    before a SIGKILL, and a restart replays everything after the last saved checkpoint."""

    def __init__(self, directory: Path, keep: int) -> None:
        super().__init__(directory)
        self.keep = keep

    def save(self, partition, state, offset, meta=None):
        if self.keep <= 0:
            return None
        self.keep -= 1
        return super().save(partition, state, offset, meta)


def test_a_crash_after_writes_past_the_checkpoint_replays_to_the_same_alerts(tmp_path, stream) -> None:
    events, card = stream
    reference, ref_store = run(small_spec(tmp_path, "reference"), events)
    expected = _alerts(ref_store)

    spec = small_spec(tmp_path, "crashed").model_copy(
        update={"checkpoint": small_spec(tmp_path, "crashed").checkpoint.model_copy(update={"interval": 1e-9})}
    )
    directory = Path(spec.checkpoint.dir) / spec.name
    # at position 7000 of 8500: inside the attack (positions 6501-7018), its alert open and counting
    crashed, store = run(spec, events, checkpoints=FreezingCheckpoints(directory, keep=14))
    store.close()
    saved = LocalCheckpointStore(directory).load("scripted")
    open_then = json.loads(str(saved.state["alerting/state"]))["groups"]
    assert any(g["entity"] == card and g["is_alert"] and 0 < g["count"] < BURST for g in open_then)
    resumed, store = run(spec, events, checkpoints=LocalCheckpointStore(directory))
    assert resumed.position == len(events) and resumed.stats.events < len(events)  # it replayed, not restarted
    assert _alerts(store) == expected
    assert len(delivery_rows(store, "transactions")) == len(delivery_rows(ref_store, "transactions"))
    store.close()
    ref_store.close()


def _alerts(store: Store) -> list[tuple]:
    return sorted(
        (a["alert_key"], a["count"], a["severity"], a["status"], a["budget_cutoff"], a["suppressed"])
        for a in alert_documents(store, "transactions")
    )
