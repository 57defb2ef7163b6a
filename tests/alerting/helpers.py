"""Scripted anomaly streams for the alerting tests."""

from __future__ import annotations

from typing import Any

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
