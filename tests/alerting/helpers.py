"""Scripted anomaly streams for the alerting tests, and a scripted card-testing attack in a stream of
simulated transactions (shared with the Kafka worker's alert tests)."""

from __future__ import annotations

from typing import Any

import numpy as np

from tocsin.batch import EventBatch
from tocsin.simulate import TransactionSimulator
from tocsin.sources.base import Source, SourceBatch

DAY = 86_400.0
T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z


def anomaly(i: int, entity: str, t: float, *, score: float = 0.9995, severity: str = "warning",
            features: tuple[str, ...] = ("count_1m", "velocity_per_min_10m"), fields: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "event_id": f"e{i}",
        "entity": entity,
        "event_time": float(t),
        "score": score,
        "severity": severity,
        "explanation": [{"feature": f, "contribution": 1.0 / (k + 1), "text": f} for k, f in enumerate(features)],
        "fields": fields or {"channel": "online"},
    }


def burst(entity: str, n: int, start: float, every: float = 2.0, first_id: int = 0, **kw: Any) -> list[dict[str, Any]]:
    return [anomaly(first_id + i, entity, start + i * every, **kw) for i in range(n)]


def write(store, manager, anomalies, watermark=None, **kw):
    """Observe ``anomalies`` and write the changes in one transaction, as the runner does."""
    from tocsin.alerting.outbox import write_changes

    changes = manager.observe(anomalies, watermark if watermark is not None else (anomalies[-1]["event_time"] if anomalies else None))
    stores = frozenset(n for n, c in manager.spec.channels.items() if c.kind == "store")
    kw.setdefault("group_wait", manager.spec.group_wait)
    with store.engine.begin() as conn:
        write_changes(conn, manager.pipeline, changes, store_channels=stores, **kw)
    return changes


# --- a card-testing attack in simulated transactions ------------------------------------

STREAM = 8_000
BURST = 500


class BatchSource(Source):
    """A fixed EventBatch served in order, resumable by position."""

    name = "scripted"

    def __init__(self, events: EventBatch) -> None:
        self.events, self.position = events, 0

    def seek(self, position: int) -> None:
        self.position = int(position)

    def read(self, max_records: int, timeout: float) -> SourceBatch | None:
        if self.position >= len(self.events):
            return None
        part = self.events.take(slice(self.position, self.position + max_records))
        self.position += len(part)
        return SourceBatch(positions=part.positions, next_position=self.position, events=part)


def card_testing_stream(card: str = "") -> tuple[EventBatch, str]:
    """STREAM clean simulated transactions with a card-testing attack of BURST small online payments on
    one card (one every 1.5 s, ~12 minutes) interleaved into the last part of the stream."""
    clean = TransactionSimulator(users=300, merchants=2_000, fraud_rate=0.0, warmup_days=0.5, seed=7).generate(STREAM)
    card = card or str(clean.keys[STREAM - 1])
    rng = np.random.default_rng(1)
    start = float(clean.times[STREAM - 1500])
    times = start + 1.5 * np.arange(BURST)
    online = clean.categorical["channel"] == "online"
    burst = EventBatch(
        ids=np.array([f"ct{i}" for i in range(BURST)], dtype=object),
        keys=np.full(BURST, card, dtype=object),
        times=times,
        numeric={"amount": np.round(rng.uniform(0.5, 5.0, BURST), 2)},
        categorical={
            "merchant_id": np.array([f"m-test-{i % 40}" for i in range(BURST)], dtype=object),
            "merchant_category": np.full(BURST, clean.categorical["merchant_category"][online][0], dtype=object),
            "city": np.full(BURST, clean.categorical["city"][clean.keys == card][0], dtype=object),
            "channel": np.full(BURST, "online", dtype=object),
        },
        labels=np.ones(BURST, dtype=np.int8),
        extra={"fraud_type": np.full(BURST, "card_testing", dtype=object)},
    )
    merged = EventBatch.concat([clean, burst])
    order = np.argsort(merged.times, kind="stable")
    merged = merged.take(order)
    merged.positions = np.arange(len(merged), dtype=np.int64)
    return merged, card
