"""What a scored batch produces for the sinks: anomalies, dead letters, optional
scored events, and the grouped alerts with their pending deliveries (the outbox).

One :class:`AlertGrouping` per stream of events (the runner's source, the API's
journal, each Kafka partition), so every driver groups, budgets and routes
alerts the same way; its alert manager's state (open groups, the day's budget)
is part of that stream's checkpoint, under ``alerting/``, beside the pipeline's.

Two steps, so a driver can batch the writes of several streams:
:meth:`AlertGrouping.prepare` folds a batch into the alert manager and returns
its :class:`BatchOutputs`; :func:`write_outputs` writes any number of them in
the caller's transaction (the store sink, :mod:`tocsin.engine.sinks`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from sqlalchemy import Connection

from tocsin.alerting import AlertChanges, AlertingSpec, AlertManager, write_changes
from tocsin.engine.pipeline import ScoredBatch
from tocsin.sensitive import Sealer
from tocsin.vocabulary import score_100
from tocsin.spec import PipelineSpec
from tocsin.store.sql import Store

if TYPE_CHECKING:
    from tocsin.alerting.dispatcher import Dispatcher

STATE_PREFIX = "alerting/"
#: the pattern of silence alerts (their anomalies' explanation names the feature ``silence``)
SILENCE = "silence"


@dataclass
class BatchOutputs:
    """One stream's outputs for one batch, decided and not yet written."""

    anomalies: list[dict[str, Any]] = field(default_factory=list)
    dead_letters: list[dict[str, Any]] = field(default_factory=list)
    scored_events: list[dict[str, Any]] = field(default_factory=list)
    changes: AlertChanges = field(default_factory=AlertChanges)
    #: the challenger's comparison with the champion on this batch (engine/shadow.py)
    comparisons: list[dict[str, Any]] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.anomalies or self.dead_letters or self.scored_events or self.changes or self.comparisons)


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
    for table_name, attribute in (("anomalies", "anomalies"), ("dead_letters", "dead_letters"), ("scored_events", "scored_events"),
                                  ("model_comparisons", "comparisons")):
        rows = [row for batch in batches for row in getattr(batch, attribute)]
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


class AlertGrouping:
    """One stream's alert state: folds each batch's anomalies into its :class:`AlertManager` (in stream
    order) and returns the batch's outputs, decided and not yet written (the store sink writes them)."""

    def __init__(self, spec: PipelineSpec, alerting: AlertingSpec | None = None) -> None:
        self.spec = spec
        #: ``alerting`` overrides the spec's section (which defaults to the store only)
        self.alerting: AlertingSpec = alerting or spec.alerting
        self.alerts = AlertManager(self.alerting, spec.name, (spec.severity.warning, spec.severity.critical))

    def prepare(self, scored: ScoredBatch, watermark: float | None, sealer: Sealer | None = None) -> BatchOutputs:
        """The batch's rows and alert changes; folds its anomalies into the alert manager (so call it
        once per batch, in stream order) and moves the alerts' event-time ``watermark``. With a
        ``sealer`` sensitive values are sealed before anything (alerts included) sees them."""
        anomalies = scored.anomaly_records(self.spec.detector.kind) + self._drift_anomalies(scored) + scored.notices
        dead = [letter.as_row() for letter in scored.dead_letters]
        if sealer is not None:
            anomalies = [sealer.seal_anomaly(row) for row in anomalies]
            dead = [sealer.seal_dead_letter(row) for row in dead]
        scored_rows = scored_event_rows(scored) if self.spec.store.scored_events else []
        grouped = self._regrouped(scored, anomalies)
        changes = self.alerts.observe(grouped, watermark if watermark is not None and np.isfinite(watermark) else None,
                                      ended=[(entity, SILENCE) for entity in scored.returned])
        return BatchOutputs(anomalies, dead, scored_rows, changes)

    def _regrouped(self, scored: ScoredBatch, anomalies: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """With ``alerting.group_by``, the event anomalies as the alerts see them: keyed by that field's value,
        each naming its event's entity as a member (the stored anomalies keep the event's entity)."""
        field_name = self.alerting.group_by
        if field_name is None or not len(scored.anomaly_rows):
            return anomalies
        values = scored.events.categorical[field_name][scored.anomaly_rows].tolist()
        regrouped = [{**row, "entity": str(value), "member": row["entity"]} for row, value in zip(anomalies, values)]
        return regrouped + anomalies[len(values):]

    def _drift_anomalies(self, scored: ScoredBatch) -> list[dict[str, Any]]:
        """The model's inputs drifting is an anomaly of the entity ``model``, explained by the column that
        moved, so it becomes an alert routed like any other (keyed by the event at which it was seen)."""
        rows = []
        for row, column, psi in scored.drift:
            text = f"{column} has moved away from the model's training data (PSI {psi:.2f}, over {self.spec.drift.psi_alert:g})"
            rows.append({
                "event_id": f"drift:{column}:{scored.events.ids[row]}", "entity": "model", "event_time": float(scored.events.times[row]),
                "score": self.spec.severity.warning, "score_100": score_100(self.spec.severity.warning), "raw_score": psi,
                "severity": "warning", "detector": "drift", "fields": {}, "label": None,
                "explanation": [{"feature": column, "value": psi, "contribution": psi, "text": text}],
            })
        return rows

    def state_dict(self) -> dict[str, np.ndarray]:
        """The alert manager's state under ``alerting/`` (fresh arrays: a later batch cannot change them)."""
        return {STATE_PREFIX + k: v for k, v in self.alerts.state_dict().items()}

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        mine = {k.removeprefix(STATE_PREFIX): v for k, v in state.items() if k.startswith(STATE_PREFIX)}
        if mine:
            self.alerts.load_state_dict(mine)
