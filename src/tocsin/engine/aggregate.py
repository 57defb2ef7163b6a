"""Event-time buckets: request logs become per-service readings (requests, error share, latency p95...).

A request log says nothing alarming one line at a time; a service's minute
does: 40 % of its requests failed, its p95 latency doubled, its traffic fell
to a fifth. :class:`Aggregator` holds the admitted events of buckets still
open (tumbling, ``every`` wide, per entity) and, once the stream's event-time
clock passes a bucket's end by ``lateness``, turns each (entity, bucket) into
one *reading*: an event keyed by the entity, timed at the bucket's start, with
one numeric field per metric. The readings then flow through the rest of the
pipeline (series features, detector, calibration, alerts) like host metrics,
so volume drops, error bursts and latency creep are ordinary series anomalies.

Everything is computed per batch with NumPy over the closing rows (grouping by
one sort; quantiles exact by linear interpolation over each group's sorted
values, like ``numpy.quantile``; distinct counts exact), with no per-event
Python. Exact quantiles cost memory for the open buckets only (at most
``every + lateness`` of events, held as columns, checkpointed): a mergeable
sketch (t-digest, KLL) would bound that memory but trade exactness and
per-event Python calls, and a bucket's rows are all at hand when it closes.

An event for a bucket that already closed is *late*: it becomes a dead letter
(code ``late``, with the bucket and how late), counted like every dead letter,
never silently merged into a reading that was already scored. A bucket with no
events produces no reading (a service that stopped entirely is a silence: see
:mod:`tocsin.engine.silence`). A reading's label is 1 when any of its events
had one (backtests).

Good at: per-entity rates, shares and latency percentiles at any bucket width.
Where it fails: entities with very many events per bucket hold them all until
the bucket closes (a service at 100k requests/s holds ~9M rows for a 1-minute
bucket plus 30 s lateness).
"""

from __future__ import annotations

import numpy as np

from tocsin.batch import EventBatch
from tocsin.engine.bounds import quantile_lower_rank, wilson_lower_bound
from tocsin.spec.aggregate import CONDITION, AggregateSpec, MetricSpec

_OPS = {">=": np.greater_equal, "<=": np.less_equal, "==": np.equal, "!=": np.not_equal, ">": np.greater, "<": np.less}


def condition_mask(where: str, events: EventBatch) -> np.ndarray:
    """Rows of ``events`` where ``field op value`` holds (numeric or categorical field).

    >>> batch = EventBatch(ids=np.array(["a", "b"], dtype=object), keys=np.array(["s", "s"], dtype=object),
    ...                    times=np.zeros(2), numeric={"status": np.array([200.0, 503.0])})
    >>> condition_mask("status >= 500", batch).tolist()
    [False, True]
    """
    match = CONDITION.match(where)
    field, op, value = match["field"], match["op"], match["value"]
    if value[0] in "'\"":
        column = events.categorical.get(field)
        if column is None:
            raise ValueError(f"where {where!r}: {field!r} is not a categorical field of the events")
        return _OPS[op](column.astype(str), value[1:-1])
    column = events.numeric.get(field)
    if column is None:
        raise ValueError(f"where {where!r}: {field!r} is not a numeric field of the events")
    return _OPS[op](column, float(value))


def _needed(metric: MetricSpec) -> list[str]:
    """The pending columns a metric reads: its condition's mask (``where``), then its field."""
    columns = [f"where:{metric.name}"] if metric.where is not None else []
    return columns + ([metric.field] if metric.field is not None else [])


def _worst(metric: MetricSpec, values: np.ndarray | None, of: np.ndarray, groups: np.ndarray, n_groups: int) -> np.ndarray:
    """Per group, the largest share (of the mask ``values``), sum (of ``values``) or count (of the rows, or of the
    mask ``values`` with a ``where``) among the values of ``of`` with at least ``min_events`` rows (0 when none)."""
    codes = np.unique(of, return_inverse=True)[1]
    width = int(codes.max()) + 1 if len(codes) else 1
    cells, cell_of_row, cell_counts = np.unique(groups * width + codes, return_inverse=True, return_counts=True)
    if metric.kind == "count" and values is None:
        totals = cell_counts.astype(np.float64)
    else:
        totals = np.bincount(cell_of_row, weights=values.astype(np.float64), minlength=len(cells))
    if metric.kind == "share":
        totals = totals / cell_counts
        if metric.transform == "lower_bound":
            totals = wilson_lower_bound(totals, cell_counts)
    eligible = cell_counts >= metric.min_events
    worst = np.full(n_groups, -np.inf)
    np.maximum.at(worst, cells[eligible] // width, totals[eligible])
    return np.where(np.isfinite(worst), worst, 0.0)


def _group_reduce(metric: MetricSpec, values: np.ndarray | None, groups: np.ndarray, counts: np.ndarray,
                  starts: np.ndarray, order: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """One metric for every group; rows are sorted by group through ``order`` (``starts``: each group's first);
    ``mask``: the rows a ``where`` keeps (count, sum, distinct)."""
    n_groups = len(counts)
    if metric.kind == "count":
        return counts.astype(np.float64) if mask is None else np.bincount(groups, weights=mask.astype(np.float64), minlength=n_groups)
    if metric.kind == "share":
        share = np.bincount(groups, weights=values.astype(np.float64), minlength=n_groups) / counts
        return wilson_lower_bound(share, counts) if metric.transform == "lower_bound" else share
    if metric.kind in ("sum", "mean"):
        total = np.bincount(groups, weights=values if mask is None else values * mask, minlength=n_groups)
        return total if metric.kind == "sum" else total / counts
    if metric.kind in ("min", "max"):
        reduce = np.minimum if metric.kind == "min" else np.maximum
        return reduce.reduceat(values[order], starts)
    if metric.kind == "distinct":
        if mask is not None:  # distinct values among the matching rows only
            width = int(values.max()) + 1 if len(values) else 1
            pairs = np.unique(groups[mask] * width + values[mask])
            return np.bincount(pairs // width, minlength=n_groups).astype(np.float64)
        sorted_rows = np.lexsort((values, groups))
        codes, grouped = values[sorted_rows], groups[sorted_rows]
        new = np.ones(len(codes), dtype=np.int64)
        new[1:] = (codes[1:] != codes[:-1]) | (grouped[1:] != grouped[:-1])
        return np.add.reduceat(new, starts).astype(np.float64)
    # quantile: linear interpolation between the closest ranks of each group's sorted values
    sorted_values = values[np.lexsort((values, groups))]
    if metric.transform == "lower_bound":
        return sorted_values[starts + quantile_lower_rank(counts, metric.q)]
    position = metric.q * (counts - 1)
    low = np.floor(position).astype(np.int64)
    high = np.minimum(low + 1, counts - 1)
    fraction = position - low
    return sorted_values[starts + low] * (1 - fraction) + sorted_values[starts + high] * fraction


class Aggregator:
    """Open buckets' events as columns; closed buckets as readings (see the module docstring).

    >>> from tocsin.spec.aggregate import AggregateSpec
    >>> spec = AggregateSpec(every=60, lateness=1, metrics=[
    ...     {"name": "requests", "kind": "count"}, {"name": "errors", "kind": "share", "where": "status >= 500"},
    ...     {"name": "p50", "kind": "quantile", "field": "latency_ms", "q": 0.5}])
    >>> events = EventBatch(ids=np.arange(4).astype(str).astype(object), keys=np.array(["api"] * 4, dtype=object),
    ...                     times=np.array([0.0, 10.0, 50.0, 61.0]),
    ...                     numeric={"status": np.array([200.0, 500.0, 200.0, 200.0]), "latency_ms": np.array([10.0, 30.0, 20.0, 5.0])})
    >>> aggregator = Aggregator(spec)
    >>> readings, late = aggregator.fold(events, watermark=61.0)   # the clock passed 00:01:00 + 1 s lateness
    >>> readings.ids.tolist(), readings.times.tolist(), {k: v.tolist() for k, v in readings.numeric.items()}
    (['api@0'], [0.0], {'requests': [3.0], 'errors': [0.3333333333333333], 'p50': [20.0]})
    >>> late.tolist()                                   # nothing came after its bucket closed
    []
    """

    def __init__(self, spec: AggregateSpec) -> None:
        self.spec = spec
        self.columns = sorted({c for m in spec.metrics for c in _needed(m)}
                              | {m.worst_of for m in spec.metrics if m.worst_of is not None})
        self.pending: dict[str, np.ndarray] = self._empty()
        #: buckets starting before this are closed (their readings were emitted)
        self.closed_until = -np.inf

    def _empty(self) -> dict[str, np.ndarray]:
        empty = {"time": np.empty(0), "key": np.empty(0, dtype=str), "position": np.empty(0, dtype=np.int64),
                 "label": np.empty(0, dtype=np.int8)}
        for column in self.columns:
            empty[column] = np.empty(0, dtype=str if column in self._categorical else (bool if column.startswith("where:") else float))
        return empty

    @property
    def _categorical(self) -> set[str]:
        return ({m.field for m in self.spec.metrics if m.kind == "distinct" and m.field is not None}
                | {m.worst_of for m in self.spec.metrics if m.worst_of is not None})

    def _columns_of(self, events: EventBatch) -> dict[str, np.ndarray]:
        keys = events.keys if self.spec.by is None else events.categorical[self.spec.by]
        out = {"time": events.times.astype(np.float64), "key": np.asarray(keys, dtype=str),
               "position": (events.positions if events.positions is not None else np.zeros(len(events), dtype=np.int64)),
               "label": (events.labels if events.labels is not None else np.zeros(len(events))).astype(np.int8)}
        for metric in self.spec.metrics:
            if metric.worst_of is not None and metric.worst_of not in out:
                out[metric.worst_of] = np.asarray(events.categorical[metric.worst_of], dtype=str)
            if metric.where is not None:
                out[f"where:{metric.name}"] = condition_mask(metric.where, events)
            column = metric.field
            if column is None or column in out:
                continue
            if column in events.numeric:
                out[column] = events.numeric[column].astype(np.float64)
            elif column in events.categorical:
                out[column] = np.asarray(events.categorical[column], dtype=str)
            elif column == "id":
                out[column] = np.asarray(events.ids, dtype=str)
            else:
                raise ValueError(f"aggregate metric {metric.name!r}: field {column!r} is not in the events")
        return out

    def fold(self, events: EventBatch, watermark: float) -> tuple[EventBatch, np.ndarray]:
        """Add ``events`` to their buckets and close every bucket the clock ``watermark`` passed; returns the
        readings of the closed buckets (in time order) and the rows of ``events`` that were late."""
        every = self.spec.every
        incoming = self._columns_of(events)
        bucket = np.floor(incoming["time"] / every) * every
        late = bucket < self.closed_until
        fresh = {name: column[~late] for name, column in incoming.items()}
        pending = {name: np.concatenate([self.pending[name], fresh[name]]) for name in self.pending}
        # a bucket [b, b + every) closes once the clock reaches b + every + lateness
        pending_bucket = np.floor(pending["time"] / every) * every
        closes = pending_bucket + every + self.spec.lateness <= watermark
        closed = {name: column[closes] for name, column in pending.items()}
        self.pending = {name: column[~closes] for name, column in pending.items()}
        if closes.any():
            self.closed_until = max(self.closed_until, float(pending_bucket[closes].max()) + every)
        return self._readings(closed, pending_bucket[closes]), np.flatnonzero(late)

    def _readings(self, rows: dict[str, np.ndarray], buckets: np.ndarray) -> EventBatch:
        names = [m.name for m in self.spec.metrics]
        if not len(buckets):
            return EventBatch(ids=np.empty(0, dtype=object), keys=np.empty(0, dtype=object), times=np.empty(0),
                              numeric={n: np.empty(0) for n in names}, positions=np.empty(0, dtype=np.int64),
                              labels=np.empty(0, dtype=np.int8))
        keys, key_index = np.unique(rows["key"], return_inverse=True)
        starts_of, bucket_index = np.unique(buckets, return_inverse=True)
        composite = bucket_index * len(keys) + key_index  # groups sort by (bucket, key): readings in time order
        group_ids, groups, counts = np.unique(composite, return_inverse=True, return_counts=True)
        order = np.argsort(groups, kind="stable")
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
        numeric = {}
        for metric in self.spec.metrics:
            mask = rows[f"where:{metric.name}"] if metric.where is not None else None
            values = rows[metric.field] if metric.field is not None else None
            if metric.kind == "share":
                values, mask = mask, None
            if metric.kind == "distinct":
                values = np.unique(values, return_inverse=True)[1]
            if metric.worst_of is not None:
                if mask is not None:  # count or sum over the matching rows
                    values = mask if values is None else values * mask
                numeric[metric.name] = _worst(metric, values, rows[metric.worst_of], groups, len(counts))
            else:
                numeric[metric.name] = _group_reduce(metric, values, groups, counts, starts, order, mask)
            if metric.transform == "sqrt":  # Anscombe: a Poisson count's noise becomes about 1
                numeric[metric.name] = 2.0 * np.sqrt(np.maximum(numeric[metric.name], 0.0) + 0.375)
        group_keys = keys[group_ids % len(keys)]
        group_times = starts_of[group_ids // len(keys)]
        ids = np.array([f"{k}@{t:.0f}" if float(t).is_integer() else f"{k}@{t!r}" for k, t in zip(group_keys.tolist(), group_times.tolist())],
                       dtype=object)
        positions = np.maximum.reduceat(rows["position"][order], starts)
        labels = np.maximum.reduceat(rows["label"][order], starts).astype(np.int8)
        return EventBatch(ids=ids, keys=group_keys.astype(object), times=group_times.astype(np.float64), numeric=numeric,
                          positions=positions.astype(np.int64), labels=labels)

    def state_dict(self) -> dict[str, np.ndarray]:
        state = {f"pending/{name}": column.copy() for name, column in self.pending.items()}
        state["closed_until"] = np.array(self.closed_until)
        return state

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        self.pending = {name: np.asarray(state[f"pending/{name}"]) for name in self.pending}
        self.closed_until = float(state["closed_until"])
