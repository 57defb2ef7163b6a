"""What a driver writes for a scored batch, in one transaction: anomalies, dead
letters, optional scored events, and the grouped alerts with their pending
deliveries (the outbox). Shared by the embedded runner, the HTTP service and
the Kafka worker, so all three group, budget and route alerts the same way.

One :class:`OutputWriter` per stream of events: the runner and the service have
one, the Kafka worker one per owned partition. Its alert manager's state (open
groups, the day's budget) is part of that stream's checkpoint:
:meth:`OutputWriter.state_dict`, under ``alerting/``, beside the pipeline's.

Two steps, so a driver can batch the writes of several streams:
:meth:`OutputWriter.prepare` folds a batch into the alert manager and returns
its :class:`BatchOutputs`; :func:`write_outputs` writes any number of them in
the caller's transaction. :meth:`OutputWriter.write` does both for one batch.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from sqlalchemy import Connection

from tocsin.alerting import AlertChanges, AlertingSpec, AlertManager, write_changes
from tocsin.alerting.tables import ensure_tables
from tocsin.decode import DeadLetter
from tocsin.engine.pipeline import ScoredBatch
from tocsin.spec import PipelineSpec
from tocsin.store.sql import Store

if TYPE_CHECKING:
    from tocsin.alerting.dispatcher import Dispatcher

STATE_PREFIX = "alerting/"


@dataclass
class BatchOutputs:
    """One stream's outputs for one batch, decided and not yet written."""

    anomalies: list[dict[str, Any]] = field(default_factory=list)
    dead_letters: list[dict[str, Any]] = field(default_factory=list)
    scored_events: list[dict[str, Any]] = field(default_factory=list)
    changes: AlertChanges = field(default_factory=AlertChanges)

    def __bool__(self) -> bool:
        return bool(self.anomalies or self.dead_letters or self.scored_events or self.changes)


def scored_event_rows(scored: ScoredBatch) -> list[dict[str, Any]]:
    """One ``scored_events`` row per scored event (``store.scored_events: true``)."""
    if scored.scored is None:
        return []
    events = scored.events
    return [
        {"event_id": str(events.ids[i]), "entity": str(events.keys[i]), "event_time": float(events.times[i]),
         "score": float(scored.score[i]), "is_anomaly": bool(scored.is_anomaly[i])}
        for i in np.flatnonzero(scored.scored).tolist()
    ]


def write_outputs(conn: Connection, store: Store, pipeline: str, alerting: AlertingSpec, batches: Sequence[BatchOutputs]) -> None:
    """Write ``batches`` (of one pipeline, one or several streams) inside the caller's transaction ``conn``.

    Rows of each table go in one statement for all batches; each batch's alert changes are written
    apart, so two streams that happened to produce the same alert key cannot collide in one statement.
    Every write is idempotent (see :mod:`tocsin.alerting.outbox`), so a replay rewrites the same rows.
    """
    for table_name in ("anomalies", "dead_letters", "scored_events"):
        rows = [row for batch in batches for row in getattr(batch, table_name)]
        store.write_rows(conn, table_name, pipeline, rows)
    for batch in batches:
        write_changes(conn, pipeline, batch.changes, store_channels=alerting.store_channels, group_wait=alerting.group_wait)


def start_dispatcher(store: Store, alerting: AlertingSpec, pipeline: str) -> Dispatcher | None:
    """A running outbox :class:`~tocsin.alerting.dispatcher.Dispatcher` when a route names a channel
    other than the store (it also resumes what an earlier process left pending); else None."""
    if not alerting.delivers:
        return None
    from tocsin.alerting.dispatcher import Dispatcher

    return Dispatcher(store, alerting, pipeline=pipeline).start()


class OutputWriter:
    """Writes a stream's batch outputs atomically and keeps the alert manager that groups them."""

    def __init__(self, spec: PipelineSpec, store: Store, alerting: AlertingSpec | None = None, dispatch: bool = True) -> None:
        self.spec = spec
        self.store = store
        ensure_tables(store.engine)
        #: ``alerting`` overrides the spec's section (which defaults to the store only)
        self.alerting: AlertingSpec = alerting or spec.alerting
        self.alerts = AlertManager(self.alerting, spec.name, (spec.severity.warning, spec.severity.critical))
        #: None unless ``dispatch`` and a route delivers beyond the store (a driver with several
        #: writers, like the Kafka worker, runs one dispatcher of its own instead)
        self.dispatcher = start_dispatcher(store, self.alerting, spec.name) if dispatch else None

    def prepare(
        self,
        scored: ScoredBatch,
        transform_fields: Callable[[dict[str, Any], str], dict[str, Any]] | None = None,
        dead_letter_rows: Callable[[list[DeadLetter]], list[dict[str, Any]]] | None = None,
    ) -> BatchOutputs:
        """The batch's rows and alert changes; folds its anomalies into the alert manager (so call it
        once per batch, in stream order). ``transform_fields(fields, event_id)`` may rewrite each
        anomaly's fields (encryption at rest) before anything is stored."""
        anomalies = scored.anomaly_records(self.spec.detector.kind)
        if transform_fields is not None:
            for row in anomalies:
                row["fields"] = transform_fields(row["fields"], row["event_id"])
        dead = dead_letter_rows(scored.dead_letters) if dead_letter_rows else [d.as_row() for d in scored.dead_letters]
        scored_rows = scored_event_rows(scored) if self.spec.store.scored_events else []
        watermark = float(scored.events.times.max()) if len(scored) else None
        changes = self.alerts.observe(anomalies, watermark)
        return BatchOutputs(anomalies, dead, scored_rows, changes)

    def write(
        self,
        scored: ScoredBatch,
        transform_fields: Callable[[dict[str, Any], str], dict[str, Any]] | None = None,
        dead_letter_rows: Callable[[list[DeadLetter]], list[dict[str, Any]]] | None = None,
    ) -> list[dict[str, Any]]:
        """Store the batch's outputs in one transaction; returns its anomaly records."""
        outputs = self.prepare(scored, transform_fields, dead_letter_rows)
        if outputs:
            # One transaction: anomalies, alerts and their pending deliveries land together or not at all.
            with self.store.engine.begin() as conn:
                write_outputs(conn, self.store, self.spec.name, self.alerting, [outputs])
            if outputs.changes.deliveries and self.dispatcher is not None:
                self.dispatcher.wake()
        return outputs.anomalies

    def state_dict(self) -> dict[str, np.ndarray]:
        """The alert manager's state under ``alerting/`` (fresh arrays: a later batch cannot change them)."""
        return {STATE_PREFIX + k: v for k, v in self.alerts.state_dict().items()}

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        mine = {k.removeprefix(STATE_PREFIX): v for k, v in state.items() if k.startswith(STATE_PREFIX)}
        if mine:
            self.alerts.load_state_dict(mine)

    def close(self) -> None:
        if self.dispatcher is not None:
            self.dispatcher.stop()
