"""Running totals of a run, and what a run that decided nothing should say about it.

Every driver counts the same way (:class:`RunStats`, fed by the driver core);
:func:`empty_run_problem` turns the totals of a finished run into the sentence a
user needs when nothing useful happened — every record a dead letter (with the
top reasons), a warm-up longer than the data, or a resumed run with nothing new
— so such a run never ends silently with exit code 0.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from tocsin.engine.pipeline import ScoredBatch
from tocsin.vocabulary import SEVERITIES

#: dead-letter reasons kept per run (the rest are counted under "other reasons")
MAX_REASONS = 50


@dataclass
class RunStats:
    """Running totals of a run, including quality against labels when the source has them."""

    #: what the pipeline scored from: events, or readings of an aggregating or profiling pipeline
    events: int = 0
    #: input records read (an aggregating pipeline reads many records per reading)
    records: int = 0
    scored: int = 0
    dead_letters: int = 0
    anomalies: int = 0
    by_severity: dict[str, int] = field(default_factory=lambda: dict.fromkeys(SEVERITIES, 0))
    true_positives: int = 0
    false_positives: int = 0
    false_negatives: int = 0
    labelled: bool = False
    batch_seconds: list[float] = field(default_factory=list)
    #: dead letters by reason (the human text), for the "why did nothing happen" message
    dead_letter_reasons: Counter[str] = field(default_factory=Counter)
    started: float = field(default_factory=time.monotonic)
    finished: float | None = None
    #: the active window, from the end of the first batch with events to the end of the latest one (see
    #: :meth:`active`): figures without the start-up before the first batch (imports, loading compiled
    #: kernels, joining a group) or the idle time after the last
    first_batch_wall: float | None = None
    first_batch_cpu: float = 0.0
    first_batch_events: int = 0
    last_batch_wall: float | None = None
    last_batch_cpu: float = 0.0

    def add(self, scored: ScoredBatch) -> None:
        self.events += len(scored)
        if len(scored):  # idle ticks (empty batches) neither open nor extend the active window
            wall, cpu = time.time(), time.process_time()
            if self.first_batch_wall is None:
                self.first_batch_wall, self.first_batch_cpu, self.first_batch_events = wall, cpu, len(scored)
            self.last_batch_wall, self.last_batch_cpu = wall, cpu
        self.records += scored.records
        self.dead_letters += len(scored.dead_letters)
        for letter in scored.dead_letters:
            reason = letter.reason if letter.reason in self.dead_letter_reasons or len(self.dead_letter_reasons) < MAX_REASONS else "other reasons"
            self.dead_letter_reasons[reason] += 1
        self.batch_seconds.append(scored.seconds)
        if scored.scored is None or not len(scored):
            return
        rows = scored.scored
        self.scored += int(rows.sum())
        flagged = scored.is_anomaly
        self.anomalies += int(flagged.sum())
        for code in scored.severity[flagged].tolist():
            self.by_severity[SEVERITIES[code]] += 1
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

    def active(self) -> dict[str, float | int | None]:
        """Events after the first batch with events, and the wall and CPU seconds from the end of that batch to the
        end of the latest one. CPU is ``time.process_time()``: every thread of the process (the Kafka client's, the
        checkpoint writer), which is what a worker costs. Times are ``time.time()`` so that windows of different
        processes can be laid side by side; ``None`` before any batch with events."""
        if self.first_batch_wall is None or self.last_batch_wall is None:
            return {"events": 0, "seconds": 0.0, "cpu_seconds": 0.0, "started_at": None, "ended_at": None}
        return {"events": self.events - self.first_batch_events,
                "seconds": round(self.last_batch_wall - self.first_batch_wall, 6),
                "cpu_seconds": round(self.last_batch_cpu - self.first_batch_cpu, 6),
                "started_at": self.first_batch_wall, "ended_at": self.last_batch_wall}

    def latency_ms(self, q: float) -> float:
        return float(np.percentile(self.batch_seconds, q) * 1000) if self.batch_seconds else 0.0

    def top_dead_letter_reasons(self, n: int = 5) -> list[tuple[str, int]]:
        return self.dead_letter_reasons.most_common(n)

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
            "records": self.records,
            "records_per_s": round(self.records / self.seconds, 1) if self.seconds > 0 else 0.0,
            "p50_batch_ms": round(self.latency_ms(50), 3),
            "p99_batch_ms": round(self.latency_ms(99), 3),
            "active": self.active(),
        }


def empty_run_problem(stats: RunStats, warmup_events: int, resumed_at: int | None = None,
                      events_seen: int | None = None) -> str | None:
    """Why a finished run decided nothing, in words a user can act on; None when it scored events.

    ``resumed_at``: the position the run resumed from (None: it started fresh); ``events_seen``:
    events the pipeline has folded in over its whole life (a resumed run counts earlier ones too).

    >>> stats = RunStats(dead_letters=3, dead_letter_reasons=Counter({"field `id` is missing": 3}))
    >>> print(empty_run_problem(stats, warmup_events=100))
    every one of the 3 records was a dead letter, so nothing was scored. Top reasons:
      3 × field `id` is missing
    >>> print(empty_run_problem(RunStats(events=40), warmup_events=100))
    the pipeline saw 40 events, fewer than detector.warmup_events (100): nothing was scored. Lower detector.warmup_events or replay more history.
    """
    if stats.scored:
        return None
    if stats.events == 0 and stats.dead_letters == 0:
        if resumed_at is not None:
            return (f"nothing new to process: resumed at position {resumed_at:,} from the last checkpoint and the source "
                    "has nothing after it; run with --fresh to start over")
        return "the source held no records: nothing was processed"
    if stats.events == 0:
        reasons = "\n".join(f"  {count:,} × {reason}" for reason, count in stats.top_dead_letter_reasons())
        return f"every one of the {stats.dead_letters:,} records was a dead letter, so nothing was scored. Top reasons:\n{reasons}"
    seen = stats.events if events_seen is None else events_seen
    if seen < warmup_events:
        return (f"the pipeline saw {seen:,} events, fewer than detector.warmup_events ({warmup_events:,}): nothing was "
                "scored. Lower detector.warmup_events or replay more history.")
    return None
