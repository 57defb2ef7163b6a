"""People's verdicts (``POST /v1/feedback``) as labels in every driver's ``confirmed`` features, exactly once.

A verdict is a row of the store's ``feedback`` table (ids only grow). Every driver core reads the rows
past the smallest position its streams still need, about once a second, joins them to the anomalies they
judge (entity and fields: whom the label concerns; sealed fields are opened with the stream's key), and
folds them into each stream's pipeline under the core's lock: ``true_positive`` is 1, ``false_positive``
0. The position of the next verdict is saved in each pipeline's state, with the features it changed
(:meth:`~tocsin.engine.pipeline.Pipeline.apply_labels`), so a crash neither loses nor doubles one. A
verdict arrives, in each stream's event time, at that stream's clock when it is read.

Only pipelines with a ``kind: confirmed`` feature read anything. Where it fails: verdicts exist only for
flagged events, so the share a ``confirmed`` feature computes says as much about what was alerted as about
what was bad (the label stream, ``source.labels_topic``, has no such bias when it carries every outcome).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
from sqlalchemy import select

from tocsin.batch import EventBatch
from tocsin.store.sql import Store
from tocsin.store.tables import feedback

log = logging.getLogger(__name__)

SOURCE = "store-feedback"
LABELS = {"true_positive": 1, "false_positive": 0}


class FeedbackLabels:
    """Reads new verdicts from the store and folds them into the streams' label features."""

    def __init__(self, store: Store, spec: Any, sealer: Any = None, interval: float = 1.0, limit: int = 10_000) -> None:
        self.store, self.spec, self.sealer = store, spec, sealer
        self.interval, self.limit = interval, limit
        self.key_field = spec.event_schema.key_field
        self.fields = sorted({f.by for f in spec.features if f.kind == "confirmed" and f.by not in (None, "entity", "global")})
        self._read_at = -float("inf")
        self._failing = False
        self.applied = 0

    def refresh(self, pipelines: Sequence[Any], *, force: bool = False) -> int:
        """Fold in verdicts not yet applied (call between batches, under the core's lock)."""
        # a stream with no event-time clock yet waits: a verdict arrives at the stream's "now"
        pipelines = [p for p in pipelines if p.features.takes_labels and np.isfinite(p.admission.watermark)]
        now = time.monotonic()
        if not pipelines or (not force and now - self._read_at < self.interval):
            return 0
        self._read_at = now
        start = min(p.labels_applied.get(SOURCE, 0) for p in pipelines)
        try:
            rows = self.store.fetch(select(feedback.c.id, feedback.c.event_id, feedback.c.label)
                                    .where(feedback.c.pipeline == self.spec.name, feedback.c.id >= start)
                                    .order_by(feedback.c.id).limit(self.limit))
            anomalies = {a["event_id"]: a for a in self.store.anomaly_rows(self.spec.name, list({r["event_id"] for r in rows}))} if rows else {}
        except Exception as error:  # noqa: BLE001 - a database hiccup: try again at the next read
            if not self._failing:
                log.warning("could not read feedback for the label features: %s", type(error).__name__)
            self._failing = True
            return 0
        self._failing = False
        usable = [(r, anomalies[r["event_id"]]) for r in rows if r["event_id"] in anomalies and r["label"] in LABELS]
        if not rows:
            return 0
        applied = 0
        if usable:
            batch = self._batch(usable)
            positions = np.array([r["id"] for r, _ in usable], dtype=np.int64)
            for pipeline in pipelines:
                at = np.full(len(usable), float(pipeline.admission.watermark))
                applied += pipeline.apply_labels(batch, at, SOURCE, positions)
        last = int(rows[-1]["id"]) + 1  # rows that judge nothing tocsin still has are passed over, not retried forever
        for pipeline in pipelines:
            pipeline.labels_applied[SOURCE] = max(pipeline.labels_applied.get(SOURCE, 0), last)
        self.applied += applied
        return applied

    def _batch(self, usable: list[tuple[dict[str, Any], dict[str, Any]]]) -> EventBatch:
        fields = []
        for _row, anomaly in usable:
            values = anomaly.get("fields") or {}
            if self.sealer is not None:
                values = self.sealer.cipher.decrypt_fields(values, self.spec.name, anomaly["event_id"])
            fields.append(values)
        categorical = {name: np.array([str(f.get(name, "")) for f in fields], dtype=object) for name in self.fields}
        return EventBatch(ids=np.array([r["event_id"] for r, _ in usable], dtype=object),
                          keys=np.array([a["entity"] for _, a in usable], dtype=object),
                          times=np.array([a["event_time"] for _, a in usable], dtype=np.float64), numeric={},
                          categorical=categorical, labels=np.array([LABELS[r["label"]] for r, _ in usable], dtype=np.int8))
