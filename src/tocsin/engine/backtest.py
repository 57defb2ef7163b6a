"""Backtests: the live pipeline replayed over a labelled file, with quality metrics.

The replay goes through the same :class:`Runner` and :class:`Pipeline` as a
live run (same features, same warm-up, same online calibration), so what a
backtest reports is what the live pipeline would have done on that history.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score

from tocsin.batch import EventBatch
from tocsin.engine.incidents import Alert, AnomalyTimes, evaluate
from tocsin.engine.pipeline import ScoredBatch
from tocsin.engine.runner import Runner, RunStats
from tocsin.sources.file import FileSource
from tocsin.spec import FileSource as FileSourceSpec
from tocsin.spec import PipelineSpec
from tocsin.store.sql import Store


def with_file_source(spec: PipelineSpec, path: Path, label_column: str | None) -> PipelineSpec:
    """The spec reading ``path`` instead of its own source, with ``label_column`` as ground truth."""
    schema = spec.event_schema
    if label_column:
        if label_column in {*schema.numeric, *schema.categorical, schema.id_field, schema.key_field, schema.time_field} - {None}:
            raise ValueError(f"--label-column {label_column!r} is also a scored field of the schema; labels must not be scored")
        schema = schema.model_copy(update={"label_field": label_column})
    source = FileSourceSpec(kind="file", path=Path(path))
    return spec.model_copy(update={"source": source, "event_schema": schema})


def count_records(path: Path) -> int | None:
    """Records in a file, cheaply (lines for JSON lines, row count for Parquet), or None if unknown."""
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson"):
        with open(path, "rb") as handle:
            return sum(chunk.count(b"\n") for chunk in iter(lambda: handle.read(1 << 20), b""))
    if suffix in (".parquet", ".pq"):
        import pyarrow.parquet as pq

        return pq.ParquetFile(path).metadata.num_rows
    return None


def backtest(
    spec: PipelineSpec,
    path: Path,
    label_column: str | None,
    store_url: str = "sqlite://",
    progress: Callable[[int], None] | None = None,
    scores_path: Path | None = None,
    label_delay: float = 0.0,
    top_k: int = 100,
    test_days: float = 7.0,
    incidents: list[dict[str, Any]] | None = None,
    catch_within: float = 300.0,
    warmup_days: float = 0.0,
    bucket: float | None = None,
) -> dict[str, Any]:
    """Replay ``path`` through the pipeline from a fresh state and report quality and speed.

    With labels, the report also gives the figures a fraud team reads daily: entity precision in each
    day's top ``top_k`` and the metrics over the final ``test_days`` of event time. ``scores_path``
    (.csv or .parquet) receives every scored event (id, entity, event time, score, decision, label and,
    with ``label_delay`` seconds, when its label becomes known and whether it was known by the end).

    With an ``incidents`` table (see :func:`tocsin.engine.incidents.load_incidents`) it also reports
    the incident-level figures of :mod:`tocsin.engine.incidents`: per kind incidents caught within
    ``catch_within`` seconds of their start and the detection delay, incident precision of the
    replay's grouped alerts, false alerts per 100 entities per day and VUS-PR, over the span from
    ``warmup_days`` after the first event on. Silence anomalies, which have no event, count. A pipeline
    that turns events into readings (``aggregate:``, ``quality:``) has each reading, timed at its
    bucket's start, cover its bucket (``bucket``: that width; None: the spec's, 0: none)."""
    spec = with_file_source(spec, path, label_column)
    rows = ScoredRows()
    delayed = DelayedLabels(label_delay)
    runner: Runner | None = None
    seen = SeenEntities() if incidents is not None else None

    def collect(scored: ScoredBatch, stats: RunStats) -> None:
        rows.add(scored)
        if seen is not None:
            seen.add(scored)
        pipeline = runner.pipeline if runner is not None else None
        if pipeline is not None and (pipeline.features.takes_labels or pipeline.supervised is not None):
            delayed.add(scored.events)
            delayed.apply_due(pipeline, pipeline.admission.watermark)
        if progress is not None:
            progress(len(scored) + len(scored.dead_letters))

    source = FileSource(path, spec.source.format)
    store = Store(store_url)
    # history sends nothing and follows no registry: the pipeline's own fits, as it replays
    runner = Runner(spec, source, store=store, checkpoints=False, on_batch=collect, dispatch=False, follow=False)
    stats = runner.run(resume=False)
    report: dict[str, Any] = stats.summary()
    report["warmup_events"] = stats.events - stats.scored
    report["alerts_per_1000"] = round(1000.0 * stats.anomalies / stats.scored, 3) if stats.scored else None
    table = rows.table()
    labelled = table["label"] >= 0
    y, s = table["label"][labelled], table["score"][labelled]
    report.update(ranking_metrics(y, s))
    report["positives"] = int(y.sum()) if len(y) else 0
    if labelled.any():
        report.update(daily_top_k(table, top_k))
        final = labelled & (table["event_time"] >= table["event_time"].max() - test_days * DAY)
        report[f"final_{test_days:g}d"] = {**ranking_metrics(table["label"][final], table["score"][final]),
                                           **daily_top_k({k: v[final] for k, v in table.items()}, top_k)}
    if seen is not None and seen.first_time is not None:
        anomalies = AnomalyTimes([*table["entity"][table["is_anomaly"]], *seen.notice_entities],
                                 [*table["event_time"][table["is_anomaly"]], *seen.notice_times])
        report["silence_anomalies"] = len(seen.notice_times)
        report.update(evaluate(incidents, anomalies, replay_alerts(store, spec.name), table, seen.entities,
                               seen.first_time, seen.last_time, catch_within, warmup_days,
                               reading_bucket(spec) if bucket is None else bucket))
    if scores_path is not None:
        write_scores(table, Path(scores_path), label_delay)
        report["scores_file"] = str(scores_path)
    report["problem"] = runner.problem()  # None, or why nothing was scored
    return report


DAY = 86_400.0


class SeenEntities:
    """What the incident figures need beyond the scored rows: every key seen (warm-up included), the
    span of event time, and the silence anomalies (they have no event, so no scored row)."""

    def __init__(self) -> None:
        self.entities: set[str] = set()
        self.first_time: float | None = None
        self.last_time: float | None = None
        self.notice_entities: list[str] = []
        self.notice_times: list[float] = []

    def add(self, scored: ScoredBatch) -> None:
        events = scored.events
        if len(events):
            self.entities.update(np.unique(events.keys.astype(str)).tolist())
            lo, hi = float(np.min(events.times)), float(np.max(events.times))
            self.first_time = lo if self.first_time is None else min(self.first_time, lo)
            self.last_time = hi if self.last_time is None else max(self.last_time, hi)
        for row in scored.notices:
            self.notice_entities.append(str(row["entity"]))
            self.notice_times.append(float(row["event_time"]))


def reading_bucket(spec: PipelineSpec) -> float:
    """The width of the buckets a pipeline's readings stand for (timed at the bucket's start): its
    ``aggregate.every`` or ``quality.every``; 0 when it scores events one by one."""
    if spec.aggregate is not None:
        return float(spec.aggregate.every)
    if spec.quality is not None:
        return float(spec.quality.every)
    return 0.0


def replay_alerts(store: Store, pipeline: str) -> list[Alert]:
    """The replay's grouped alerts (from its store), suppressed repeats left out: they reach nobody. With
    ``alerting.group_by`` each lists its members (the event entities it grouped)."""
    from sqlalchemy import select

    from tocsin.alerting.tables import alert_details
    from tocsin.store.tables import alerts

    statement = (select(alerts.c.entity, alert_details.c.window_start, alert_details.c.last_event_time,
                        alert_details.c.attributes)
                 .join(alert_details, (alert_details.c.pipeline == alerts.c.pipeline) & (alert_details.c.alert_key == alerts.c.alert_key))
                 .where(alerts.c.pipeline == pipeline, alert_details.c.suppressed.is_(False)))
    return [Alert(str(row["entity"]), float(row["window_start"]), float(row["last_event_time"]),
                  tuple(str(m) for m in ((row["attributes"] or {}).get("members") or ())))
            for row in store.fetch(statement)]


class DelayedLabels:
    """A backtest's labels revealed ``delay`` seconds after their event: each becomes known at event time
    + delay and is folded into the label features (``kind: confirmed``) once the replay's event-time
    clock has passed that, after the batch that moved the clock. So no label influences the score of an
    event at or before the label's arrival: the prequential protocol, as a live stream would live it."""

    def __init__(self, delay: float) -> None:
        self.delay = float(delay)
        self.pending: list[tuple[np.ndarray, EventBatch]] = []  # (known at, labelled positives), time order
        self.applied = 0

    def add(self, events: EventBatch) -> None:
        if events.labels is None or not len(events):
            return
        positives = np.flatnonzero(events.labels > 0)
        if len(positives):
            self.pending.append((events.times[positives] + self.delay, events.take(positives)))

    def apply_due(self, pipeline: Any, now: float) -> None:
        keep: list[tuple[np.ndarray, EventBatch]] = []
        for known_at, labelled in self.pending:
            due = known_at <= now
            if due.any():
                n = int(due.sum())
                pipeline.apply_labels(labelled.take(np.flatnonzero(due)), known_at[due], "backtest-labels",
                                      np.arange(self.applied, self.applied + n, dtype=np.int64))
                self.applied += n
            if not due.all():
                rest = np.flatnonzero(~due)
                keep.append((known_at[rest], labelled.take(rest)))
        self.pending = keep


class ScoredRows:
    """Every scored event of a replay, as columns (ids and entities as strings): what the metrics and
    the scores file are computed from. Warm-up events, scored by nobody, are not in it."""

    def __init__(self) -> None:
        self.parts: list[dict[str, np.ndarray]] = []

    def add(self, scored: ScoredBatch) -> None:
        if scored.scored is None or not scored.scored.any():
            return
        rows = scored.scored
        events = scored.events
        labels = events.labels[rows].astype(np.int8) if events.labels is not None else np.full(int(rows.sum()), -1, np.int8)
        self.parts.append({
            "event_id": events.ids[rows].astype(str), "entity": events.keys[rows].astype(str),
            "event_time": events.times[rows].astype(np.float64), "score": scored.score[rows].astype(np.float64),
            "raw_score": scored.raw_score[rows].astype(np.float64), "is_anomaly": scored.is_anomaly[rows].astype(bool),
            "severity": scored.severity[rows].astype(str), "label": labels,
        })

    def table(self) -> dict[str, np.ndarray]:
        names = ("event_id", "entity", "event_time", "score", "raw_score", "is_anomaly", "severity", "label")
        if not self.parts:
            return {"event_id": np.empty(0, str), "entity": np.empty(0, str), "event_time": np.empty(0), "score": np.empty(0),
                    "raw_score": np.empty(0), "is_anomaly": np.empty(0, bool), "severity": np.empty(0, str),
                    "label": np.empty(0, np.int8)}
        return {name: np.concatenate([p[name] for p in self.parts]) for name in names}


def ranking_metrics(y: np.ndarray, s: np.ndarray) -> dict[str, float | None]:
    """AUC-ROC and average precision, None when the labels hold one class only."""
    defined = len(y) > 0 and 0 < int(y.sum()) < len(y)
    return {"aucpr": float(average_precision_score(y, s)) if defined else None,
            "aucroc": float(roc_auc_score(y, s)) if defined else None}


def daily_top_k(table: dict[str, np.ndarray], k: int) -> dict[str, Any]:
    """Entity precision in each UTC day's top ``k``: the day's entities ranked by their highest score,
    the share of the top ``k`` with a positive label that day (what an analyst working a daily queue
    of ``k`` cases sees). Mean over days, and the days counted.

    >>> t = {"event_time": np.array([0., 1., 2., 86_400.]), "entity": np.array(["a", "a", "b", "a"]),
    ...      "score": np.array([.9, .1, .5, .7]), "label": np.array([1, 0, 0, 0])}
    >>> daily_top_k(t, 1)
    {'precision_at_k': 0.5, 'k': 1, 'days': 2}
    """
    labelled = table["label"] >= 0
    day = np.floor(table["event_time"][labelled] / DAY).astype(np.int64)
    entity, score, label = table["entity"][labelled], table["score"][labelled], table["label"][labelled]
    precisions = []
    for d in np.unique(day):
        today = day == d
        best: dict[str, tuple[float, int]] = {}
        for e, sc, lb in zip(entity[today].tolist(), score[today].tolist(), label[today].tolist()):
            top, positive = best.get(e, (-np.inf, 0))
            best[e] = (max(top, sc), max(positive, lb))
        ranked = sorted(best.values(), key=lambda item: -item[0])[:k]
        precisions.append(sum(p for _, p in ranked) / len(ranked))
    return {"precision_at_k": float(np.mean(precisions)) if precisions else None, "k": k, "days": len(precisions)}


def write_scores(table: dict[str, np.ndarray], path: Path, label_delay: float) -> None:
    """Every scored event to ``path`` (.csv or .parquet). With labels: ``label_known_at`` (event time +
    ``label_delay``) and ``label_known`` (that time had come by the replay's last event time): what a
    prequential evaluation may train on."""
    import pyarrow as pa

    columns = dict(table)
    if (columns["label"] >= 0).any():
        columns["label_known_at"] = columns["event_time"] + float(label_delay)
        end = columns["event_time"].max() if len(columns["event_time"]) else 0.0
        columns["label_known"] = columns["label_known_at"] <= end
    else:
        del columns["label"]
    data = pa.table(columns)
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = path.suffix.lower()
    if suffix in (".parquet", ".pq"):
        import pyarrow.parquet as pq

        pq.write_table(data, path)
    elif suffix == ".csv":
        import pyarrow.csv as pacsv

        pacsv.write_csv(data, path)
    else:
        raise ValueError(f"--scores {path}: write .csv or .parquet")
