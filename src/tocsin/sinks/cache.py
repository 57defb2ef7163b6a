"""The cache sink: per-entity state for the API to read, from Redis."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tocsin.engine.pipeline import ScoredBatch
from tocsin.sinks.base import ProcessedBatch, Sink


class CacheSink(Sink):
    """The Redis entity-state cache the API reads. A view, not a record: a failed update is reported
    (health ``cache`` down) and skipped, never retried, so the cache cannot stall the stream."""

    component = "cache"

    def __init__(self, cache: Any, pipeline: str, on_health: Callable[[str, BaseException | None], None]) -> None:
        self.cache = cache
        self.pipeline = pipeline
        self.on_health = on_health
        self._pending: list[ScoredBatch] = []

    def send(self, item: ProcessedBatch) -> None:
        self._pending.append(item.scored)

    def flush(self) -> None:
        batches, self._pending = self._pending, []
        if not batches:
            return
        try:
            self.cache.update(self.pipeline, batches)
        except Exception as error:  # noqa: BLE001 - the cache is a view: report, go on
            self.on_health(self.component, error)
            return
        self.on_health(self.component, None)
