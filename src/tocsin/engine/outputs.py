"""What a driver writes for a scored batch, in one transaction: anomalies, dead
letters, optional scored events, and the grouped alerts with their pending
deliveries (the outbox). Shared by the embedded runner and the HTTP service so
both group, budget and route alerts the same way.

The alert manager's state (open groups, the day's budget) is part of the
driver's checkpoint: :meth:`OutputWriter.state_dict` beside the pipeline's.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from tocsin.alerting import AlertingSpec, AlertManager, write_changes
from tocsin.alerting.tables import ensure_tables
from tocsin.decode import DeadLetter
from tocsin.engine.pipeline import ScoredBatch
from tocsin.spec import PipelineSpec
from tocsin.store.sql import Store

STATE_PREFIX = "alerting/"


class OutputWriter:
    """Writes a batch's outputs atomically and keeps the alert manager that groups them."""

    def __init__(self, spec: PipelineSpec, store: Store, alerting: AlertingSpec | None = None, dispatch: bool = True) -> None:
        self.spec = spec
        self.store = store
        ensure_tables(store.engine)
        #: ``alerting`` overrides the spec's section (which defaults to the store only)
        self.alerting: AlertingSpec = alerting or spec.alerting
        self.alerts = AlertManager(self.alerting, spec.name, (spec.severity.warning, spec.severity.critical))
        self._store_channels = frozenset(n for n, c in self.alerting.channels.items() if c.kind == "store")
        self.dispatcher = None
        if dispatch and self.alerting.delivers:
            from tocsin.alerting.dispatcher import Dispatcher

            self.dispatcher = Dispatcher(store, self.alerting, pipeline=spec.name).start()

    def write(
        self,
        scored: ScoredBatch,
        transform_fields: Callable[[dict[str, Any], str], dict[str, Any]] | None = None,
        dead_letter_rows: Callable[[list[DeadLetter]], list[dict[str, Any]]] | None = None,
    ) -> list[dict[str, Any]]:
        """Store the batch's outputs; returns its anomaly records. ``transform_fields(fields, event_id)``
        may rewrite each anomaly's fields (encryption at rest) before anything is stored."""
        anomalies = scored.anomaly_records(self.spec.detector.kind)
        if transform_fields is not None:
            for row in anomalies:
                row["fields"] = transform_fields(row["fields"], row["event_id"])
        dead = dead_letter_rows(scored.dead_letters) if dead_letter_rows else [d.as_row() for d in scored.dead_letters]
        scored_rows: list[dict[str, Any]] = []
        if self.spec.store.scored_events and scored.scored is not None:
            events = scored.events
            scored_rows = [
                {"event_id": str(events.ids[i]), "entity": str(events.keys[i]), "event_time": float(events.times[i]),
                 "score": float(scored.score[i]), "is_anomaly": bool(scored.is_anomaly[i])}
                for i in np.flatnonzero(scored.scored).tolist()
            ]
        watermark = float(scored.events.times.max()) if len(scored) else None
        changes = self.alerts.observe(anomalies, watermark)
        if anomalies or dead or scored_rows or changes:
            # One transaction: anomalies, alerts and their pending deliveries land together or not at all.
            with self.store.engine.begin() as conn:
                for table_name, rows in (("anomalies", anomalies), ("dead_letters", dead), ("scored_events", scored_rows)):
                    self.store.write_rows(conn, table_name, self.spec.name, rows)
                write_changes(conn, self.spec.name, changes, store_channels=self._store_channels,
                              group_wait=self.alerting.group_wait)
            if changes.deliveries and self.dispatcher is not None:
                self.dispatcher.wake()
        return anomalies

    def state_dict(self) -> dict[str, np.ndarray]:
        return {STATE_PREFIX + k: v for k, v in self.alerts.state_dict().items()}

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        mine = {k.removeprefix(STATE_PREFIX): v for k, v in state.items() if k.startswith(STATE_PREFIX)}
        if mine:
            self.alerts.load_state_dict(mine)

    def close(self) -> None:
        if self.dispatcher is not None:
            self.dispatcher.stop()
