"""What the dashboard shows live, kept in memory: each entity's recent events (for a series pipeline, with the
band each metric's series model expected at each reading) and activity per second.

Both are fed by every batch the driver core processes (whatever the driver) and
read by the API; both are views, lost on restart (stored anomalies and alerts
are not).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import Any

import numpy as np

from tocsin.engine.pipeline import ScoredBatch
from tocsin.features.featureset import ENTITY
from tocsin.spec import PipelineSpec
from tocsin.vocabulary import SEVERITIES, score_100

SERIES_SECONDS = 300
RATE_WINDOW_S = 10
#: a metric's usual band is its expected value ± this many standard deviations (what explanations call "usual")
BAND_SIGMAS = 2.0


class RecentEvents:
    """A ring of the last ``capacity`` decided events (vectorised appends, scan per lookup).

    For each metric of ``bands`` (the fields a ``series`` feature models per entity) it also keeps the
    expected value and standard deviation the series model had for the reading (the feature frame's
    ``{metric}_expected`` and ``{metric}_sigma`` context), and for anomalies what their explanation said,
    item by item: what a metric chart with its usual band and its anomalies is drawn from."""

    def __init__(self, capacity: int, numeric: list[str], categorical: list[str], bands: list[str] | tuple[str, ...] = ()) -> None:
        self.capacity = capacity
        self.lock = threading.Lock()
        self.keys = np.empty(capacity, dtype=object)
        self.ids = np.empty(capacity, dtype=object)
        self.times = np.zeros(capacity)
        self.score = np.full(capacity, np.nan)
        self.severity = np.full(capacity, -1, dtype=np.int8)
        self.is_anomaly = np.zeros(capacity, dtype=bool)
        self.values = {name: np.zeros(capacity) for name in numeric}
        self.values.update({name: np.empty(capacity, dtype=object) for name in categorical})
        self.bands = {name: (np.full(capacity, np.nan), np.full(capacity, np.nan)) for name in bands}
        #: an anomaly's explanation items as (feature, text) pairs; None for the other events
        self.explained = np.empty(capacity, dtype=object)
        self.filled = 0
        self.next = 0
        self.order = np.zeros(capacity, dtype=np.int64)
        self.counter = 0

    def add(self, scored: ScoredBatch) -> None:
        events, n = scored.events, len(scored)
        if n == 0:
            return
        start = max(0, n - self.capacity)
        with self.lock:
            rows = np.arange(start, n)
            slots = (self.next + np.arange(len(rows))) % self.capacity
            self.keys[slots] = events.keys[rows]
            self.ids[slots] = events.ids[rows]
            self.times[slots] = events.times[rows]
            self.score[slots] = scored.score[rows]
            self.severity[slots] = scored.severity[rows]
            self.is_anomaly[slots] = scored.is_anomaly[rows]
            for name, column in self.values.items():
                source = events.numeric.get(name)
                if source is None:
                    source = events.categorical.get(name)
                if source is not None:
                    column[slots] = source[rows]
            context = scored.features.context if scored.features is not None else {}
            for name, (expected, sigma) in self.bands.items():
                for column, part in ((expected, "expected"), (sigma, "sigma")):
                    source = context.get(f"{name}_{part}")
                    column[slots] = source[rows] if source is not None else np.nan
            self.explained[slots] = None
            for row, items in scored.explanations.items():
                if row >= start:
                    self.explained[slots[row - start]] = tuple((item["feature"], item["text"]) for item in items)
            self.order[slots] = self.counter + np.arange(len(rows))
            self.counter += len(rows)
            self.next = int((self.next + len(rows)) % self.capacity)
            self.filled = min(self.capacity, self.filled + len(rows))

    def of(self, key: str, limit: int) -> list[dict[str, Any]]:
        with self.lock:
            hits = np.flatnonzero(self.keys[: self.filled] == key)
            hits = hits[np.argsort(self.order[hits], kind="stable")][-limit:]
            out = []
            for i in hits.tolist():
                score = float(self.score[i])
                code = int(self.severity[i])
                out.append(
                    {
                        "event_id": str(self.ids[i]),
                        "event_time": float(self.times[i]),
                        "score": None if score != score else score,
                        "score_100": None if score != score else score_100(score),
                        "is_anomaly": bool(self.is_anomaly[i]),
                        "severity": SEVERITIES[code] if code >= 0 else None,
                        "values": {name: _plain(column[i]) for name, column in self.values.items()},
                        # what a metric chart needs besides (the service turns these into its metric series)
                        "bands": {name: (_plain(expected[i]), _plain(sigma[i])) for name, (expected, sigma) in self.bands.items()},
                        "explained": self.explained[i] or (),
                    }
                )
            return out


def series_metrics(spec: PipelineSpec) -> list[str]:
    """The fields a ``series`` feature models per entity (one series per entity and field: wide events), in spec order."""
    fields = [f.field for f in spec.features if f.kind == "series" and (f.by or ENTITY) == ENTITY and f.metric_field is None]
    return list(dict.fromkeys(fields))


def metric_series(recent: list[dict[str, Any]], metrics: list[str], features: dict[str, str],
                  hidden: frozenset[str] = frozenset()) -> list[dict[str, Any]]:
    """Each metric of ``metrics`` (but ``hidden`` ones) over the events ``recent`` (:meth:`RecentEvents.of`, oldest
    first): its values, the expected value and sigma of its series model at each reading, the usual band (expected ±
    ``BAND_SIGMAS`` sigma, its low end at 0 for a non-negative metric, as explanations say it), and the anomalies it
    explains: the ones whose explanation names it (``features``: feature → metric) first, or names it with its value
    outside the band; an anomaly whose explanation names no metric is marked on every metric."""
    out = []
    for metric in metrics:
        if metric in hidden:
            continue
        value = np.array([e["values"].get(metric) for e in recent], dtype=np.float64)
        expected = np.array([e["bands"][metric][0] for e in recent], dtype=np.float64)
        sigma = np.array([e["bands"][metric][1] for e in recent], dtype=np.float64)
        low, high = expected - BAND_SIGMAS * sigma, expected + BAND_SIGMAS * sigma
        low = np.where((low < 0) & (expected >= 0) & (value >= 0), 0.0, low)
        outside = (value < low) | (value > high)
        anomalies = []
        for i, event in enumerate(recent):
            if not event["is_anomaly"]:
                continue
            named = [(features.get(feature), text) for feature, text in event["explained"] if feature in features]
            said = [text for m, text in named if m == metric]
            if (named and named[0][0] == metric) or (said and outside[i]) or not named:
                anomalies.append({"event_id": event["event_id"], "event_time": event["event_time"], "value": _plain(value[i]),
                                  "score_100": event["score_100"], "severity": event["severity"], "why": "; ".join(dict.fromkeys(said))})
        out.append({
            "metric": metric, "features": [name for name, m in features.items() if m == metric],
            "times": [e["event_time"] for e in recent], "values": _column(value), "expected": _column(expected),
            "sigma": _column(sigma), "low": _column(low), "high": _column(high), "anomalies": anomalies,
        })
    return out


def _column(values: np.ndarray) -> list[float | None]:
    return [None if v != v else v for v in values.tolist()]


class Activity:
    """Events and anomalies per wall-clock second, for the live overview."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.buckets: deque[list[int]] = deque()  # [second, events, anomalies]
        self.events = 0
        self.scored = 0
        self.anomalies = 0
        self.dead_letters = 0
        self.by_severity = dict.fromkeys(SEVERITIES, 0)

    def add(self, events: int, scored: int, anomalies: int, dead_letters: int, severity_counts: dict[str, int]) -> None:
        now = int(time.time())
        with self.lock:
            self.events += events
            self.scored += scored
            self.anomalies += anomalies
            self.dead_letters += dead_letters
            for name, count in severity_counts.items():
                self.by_severity[name] += count
            if self.buckets and self.buckets[-1][0] == now:
                self.buckets[-1][1] += events
                self.buckets[-1][2] += anomalies
            else:
                self.buckets.append([now, events, anomalies])
            while self.buckets and self.buckets[0][0] < now - SERIES_SECONDS:
                self.buckets.popleft()

    def snapshot(self) -> dict[str, Any]:
        now = int(time.time())
        with self.lock:
            recent = sum(b[1] for b in self.buckets if b[0] > now - RATE_WINDOW_S)
            series = [{"t": float(b[0]), "events": b[1], "anomalies": b[2]} for b in self.buckets]
            return {
                "events": self.events,
                "events_per_s": recent / RATE_WINDOW_S,
                "anomalies": self.anomalies,
                "anomaly_rate": self.anomalies / self.scored if self.scored else 0.0,
                "anomalies_by_severity": dict(self.by_severity),
                "dead_letters": self.dead_letters,
                "series": series,
            }


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and value != value:
        return None
    return value
