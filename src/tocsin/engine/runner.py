"""The streaming driver: poll a source in micro-batches, run the pipeline, write
the sinks, checkpoint.

A micro-batch is bounded by ``runner.batch_size`` events and by
``runner.max_wait`` seconds, whichever comes first, so latency stays bounded
when the input is slow and throughput stays high when it is fast.

Per checkpoint the order is fixed (see :mod:`tocsin.checkpoint.base`): the
store acknowledged every output up to position X, then (state at X, X) is
saved. After a crash the run resumes from the last checkpoint and replays; the
store is idempotent on event id, so the replay creates no duplicates.

Alerts: an :class:`~tocsin.alerting.AlertManager` groups each batch's anomalies
into alerts; the alerts, their details and their pending deliveries (the
outbox) are written in the same transaction as the anomalies, and the
manager's state is saved in the checkpoint beside the pipeline's (under
``alerting/``), so a replay regroups exactly as the first run did. When a route
sends alerts anywhere but the store, a :class:`~tocsin.alerting.dispatcher.Dispatcher`
thread drains the outbox (and resumes what a previous run left pending).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tocsin.alerting import AlertingSpec
from tocsin.checkpoint.base import CheckpointStore
from tocsin.checkpoint.local import LocalCheckpointStore
from tocsin.engine.gc_tuning import tune_gc_for_hot_loop
from tocsin.engine.outputs import OutputWriter
from tocsin.engine.pipeline import Pipeline, ScoredBatch
from tocsin.sources.base import Source
from tocsin.spec import PipelineSpec
from tocsin.store.sql import Store

log = logging.getLogger(__name__)


@dataclass
class RunStats:
    """Running totals of a run, including quality against labels when the source has them."""

    events: int = 0
    scored: int = 0
    dead_letters: int = 0
    anomalies: int = 0
    by_severity: dict[str, int] = field(default_factory=lambda: {"info": 0, "warning": 0, "critical": 0})
    true_positives: int = 0
    false_positives: int = 0
    false_negatives: int = 0
    labelled: bool = False
    batch_seconds: list[float] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)
    finished: float | None = None

    def add(self, scored: ScoredBatch) -> None:
        self.events += len(scored)
        self.dead_letters += len(scored.dead_letters)
        self.batch_seconds.append(scored.seconds)
        if scored.scored is None or not len(scored):
            return
        rows = scored.scored
        self.scored += int(rows.sum())
        flagged = scored.is_anomaly
        self.anomalies += int(flagged.sum())
        for code in scored.severity[flagged].tolist():
            self.by_severity[("info", "warning", "critical")[code]] += 1
        labels = scored.events.labels
        if labels is not None:
            self.labelled = True
            truth = labels[rows].astype(bool)
            flags = flagged[rows]
            self.true_positives += int((truth & flags).sum())
            self.false_positives += int((~truth & flags).sum())
            self.false_negatives += int((truth & ~flags).sum())

    @property
    def seconds(self) -> float:
        return (self.finished or time.monotonic()) - self.started

    @property
    def events_per_s(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0

    @property
    def precision(self) -> float | None:
        flagged = self.true_positives + self.false_positives
        return self.true_positives / flagged if self.labelled and flagged else None

    @property
    def recall(self) -> float | None:
        actual = self.true_positives + self.false_negatives
        return self.true_positives / actual if self.labelled and actual else None

    def latency_ms(self, q: float) -> float:
        return float(np.percentile(self.batch_seconds, q) * 1000) if self.batch_seconds else 0.0

    def summary(self) -> dict[str, object]:
        precision, recall = self.precision, self.recall
        f1 = 2 * precision * recall / (precision + recall) if precision and recall else None
        return {
            "events": self.events,
            "scored": self.scored,
            "dead_letters": self.dead_letters,
            "anomalies": self.anomalies,
            "anomalies_by_severity": dict(self.by_severity),
            "precision": precision,
            "recall": recall,
            "f1": f1,
            "true_positives": self.true_positives,
            "false_positives": self.false_positives,
            "false_negatives": self.false_negatives,
            "seconds": round(self.seconds, 3),
            "events_per_s": round(self.events_per_s, 1),
            "p50_batch_ms": round(self.latency_ms(50), 3),
            "p99_batch_ms": round(self.latency_ms(99), 3),
        }


class Runner:
    """Drives one pipeline over one source until the source ends or :meth:`stop` is called."""

    def __init__(
        self,
        spec: PipelineSpec,
        source: Source,
        pipeline: Pipeline | None = None,
        store: Store | None = None,
        checkpoints: CheckpointStore | None | bool = None,
        on_batch: Callable[[ScoredBatch, RunStats], None] | None = None,
        alerting: AlertingSpec | None = None,
        dispatch: bool = True,
    ) -> None:
        self.spec = spec
        self.source = source
        self.pipeline = pipeline or Pipeline(spec)
        self.store = store if store is not None else Store(spec.store.url)
        self.outputs = OutputWriter(spec, self.store, alerting=alerting, dispatch=dispatch)
        self.alerting = self.outputs.alerting
        self.alerts = self.outputs.alerts
        self.dispatcher = self.outputs.dispatcher
        if checkpoints is None or checkpoints is True:
            checkpoints = LocalCheckpointStore(Path(spec.checkpoint.dir) / spec.name)
        #: None when checkpointing is off (backtests always start fresh)
        self.checkpoints: CheckpointStore | None = checkpoints or None
        self.on_batch = on_batch
        self.stats = RunStats()
        self.position = 0
        self._stop = threading.Event()
        self._last_checkpoint = time.monotonic()

    @property
    def partition(self) -> str:
        return self.source.name

    def stop(self) -> None:
        """Ask the loop to finish the current batch, checkpoint and return."""
        self._stop.set()

    def restore(self) -> bool:
        """Load the last checkpoint, if any, and seek the source to its position."""
        checkpoint = self.checkpoints.load(self.partition) if self.checkpoints else None
        if checkpoint is None:
            return False
        self.pipeline.load_state_dict(checkpoint.state)
        self.outputs.load_state_dict(checkpoint.state)
        self.position = checkpoint.offset + 1  # the checkpoint holds the last position folded in
        self.source.seek(self.position)
        log.info("resumed %s from position %d", self.partition, self.position)
        return True

    def run(self, resume: bool = True) -> RunStats:
        if resume:
            self.restore()
        batch_size, max_wait = self.spec.runner.batch_size, self.spec.runner.max_wait
        tune_gc_for_hot_loop()
        # False while a batch is half done (state advanced, outputs or position not yet): a
        # checkpoint then would pair the new state with the old position and count the batch twice.
        between_batches = True
        try:
            while not self._stop.is_set():
                raw = self.source.read(batch_size, max_wait)
                if raw is None:
                    break
                if len(raw):
                    between_batches = False
                    scored = self.pipeline.process_raw(raw, self.source.name)
                    self._write(scored)
                    self.position = raw.next_position
                    between_batches = True
                    self.stats.add(scored)
                    if self.on_batch is not None:
                        self.on_batch(scored, self.stats)
                self.position = raw.next_position
                if time.monotonic() - self._last_checkpoint >= self.spec.checkpoint.interval:
                    self.checkpoint()
        finally:
            if between_batches:
                self.checkpoint()
            else:
                log.warning("%s stopped inside a batch: no final checkpoint, the next run replays from the last one",
                            self.partition)
            self.stats.finished = time.monotonic()
        return self.stats

    def _write(self, scored: ScoredBatch) -> None:
        self.outputs.write(scored)

    def checkpoint(self) -> None:
        """Save (state, position); the store already holds every output before this position."""
        if self.checkpoints is None:
            return
        state = self.pipeline.state_dict()
        state.update(self.outputs.state_dict())
        self.checkpoints.save(
            self.partition,
            state,
            self.position - 1,  # the last position folded in (-1: none yet), as Checkpoint defines it
            meta={"pipeline": self.spec.name, "pid": os.getpid(), "events": self.stats.events},
        )
        self._last_checkpoint = time.monotonic()
