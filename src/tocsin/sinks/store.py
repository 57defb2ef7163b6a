"""The store sink: every batch of a step in one transaction of the results store."""

from __future__ import annotations

from collections.abc import Callable

from tocsin.alerting.tables import ensure_tables
from tocsin.engine.outputs import BatchOutputs, write_outputs
from tocsin.sinks.base import ProcessedBatch, Sink
from tocsin.spec import AlertingSpec
from tocsin.store.sql import Store


class StoreSink(Sink):
    """Anomalies, dead letters, scored events, alert changes and pending deliveries of every batch of a
    step in ONE store transaction, so they land together or not at all. Every write is idempotent
    (keyed by event id, alert key or source position), so a replay rewrites the same rows."""

    component = "store"

    def __init__(self, store: Store, pipeline: str, alerting: AlertingSpec, on_written: Callable[[], None] | None = None) -> None:
        self.store = store
        self.pipeline = pipeline
        self.alerting = alerting
        self.on_written = on_written
        ensure_tables(store.engine)
        self._pending: list[BatchOutputs] = []

    def send(self, item: ProcessedBatch) -> None:
        if item.outputs:
            self._pending.append(item.outputs)

    def flush(self) -> None:
        if not self._pending:
            return
        self.store.check_file()  # a deleted SQLite file would take the writes and lose them
        with self.store.engine.begin() as conn:
            write_outputs(conn, self.store, self.pipeline, self.alerting, self._pending)
        deliveries = any(outputs.changes.deliveries for outputs in self._pending)
        self._pending = []
        if deliveries and self.on_written is not None:
            self.on_written()
