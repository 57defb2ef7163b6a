"""Per-entity state in Redis, written by the workers, read by the API.

For each entity a batch touched, one hash ``{prefix}:{pipeline}:entity:{key}``
holds its latest event (id, time, score, anomaly flag, severity) and a sorted
set ``…:anomalies:{key}`` its recent anomalies (event id scored by event
time, trimmed to ``keep_anomalies``). A whole batch is one pipelined round trip,
never one per event.

Writes are idempotent (``HSET`` of values, ``ZADD`` of event ids), so a replay
after a crash rewrites the same values; while a replay catches up an entity may
briefly show an older latest event. The cache is a view, not a record: the
store is the source of truth, and a cache outage only degrades health.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from tocsin.engine.pipeline import ScoredBatch


class EntityCache:
    """Entity state in the Redis at ``url``."""

    def __init__(self, url: str, prefix: str = "tocsin", keep_anomalies: int = 50, ttl_seconds: int | None = 30 * 86_400) -> None:
        import redis

        self.client = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
        self.prefix = prefix
        self.keep_anomalies = keep_anomalies
        self.ttl_seconds = ttl_seconds

    def _entity_key(self, pipeline: str, entity: str) -> str:
        return f"{self.prefix}:{pipeline}:entity:{entity}"

    def _anomalies_key(self, pipeline: str, entity: str) -> str:
        return f"{self.prefix}:{pipeline}:anomalies:{entity}"

    def update(self, pipeline: str, batches: Sequence[ScoredBatch]) -> None:
        """Record the latest event of every entity in ``batches`` and their anomalies, in one round trip."""
        pipe = self.client.pipeline(transaction=False)
        touched = 0
        for scored in batches:
            n = len(scored)
            if not n:
                continue
            events = scored.events
            keys = events.keys
            # the last row of each entity: unique on the reversed keys
            _, first_from_end = np.unique(keys[::-1].astype(str), return_index=True)
            last_rows = (n - 1 - first_from_end).tolist()
            for row in last_rows:
                score = float(scored.score[row])
                mapping: dict[str, Any] = {
                    "event_id": str(events.ids[row]),
                    "event_time": float(events.times[row]),
                    "score": "" if np.isnan(score) else score,
                    "is_anomaly": int(bool(scored.is_anomaly[row])),
                    "severity": scored.severity_name(row) or "",
                }
                key = self._entity_key(pipeline, str(keys[row]))
                pipe.hset(key, mapping=mapping)
                if self.ttl_seconds:
                    pipe.expire(key, self.ttl_seconds)
                touched += 1
            for row in scored.anomaly_rows.tolist():
                key = self._anomalies_key(pipeline, str(keys[row]))
                pipe.zadd(key, {str(events.ids[row]): float(events.times[row])})
                pipe.zremrangebyrank(key, 0, -self.keep_anomalies - 1)
        if touched:
            pipe.execute()

    def entity(self, pipeline: str, entity: str) -> dict[str, Any] | None:
        """The entity's latest event and recent anomaly ids (newest first), or None if unknown."""
        pipe = self.client.pipeline(transaction=False)
        pipe.hgetall(self._entity_key(pipeline, entity))
        pipe.zrevrange(self._anomalies_key(pipeline, entity), 0, -1)
        latest, anomalies = pipe.execute()
        if not latest:
            return None
        data = {k.decode(): v.decode() for k, v in latest.items()}
        return {
            "entity": entity,
            "event_id": data["event_id"],
            "event_time": float(data["event_time"]),
            "score": float(data["score"]) if data["score"] else None,
            "is_anomaly": data["is_anomaly"] == "1",
            "severity": data["severity"] or None,
            "recent_anomalies": [a.decode() for a in anomalies],
        }

    def ping(self) -> bool:
        try:
            return bool(self.client.ping())
        except Exception:  # noqa: BLE001 - any failure means "down"
            return False

    def close(self) -> None:
        self.client.close()
