"""Data quality: the rows of a table or topic become readings of their own health, per source and bucket.

A data pipeline's rows rarely look wrong one at a time; a load does: its row
count collapsed, a column went 40 % null, a number turned into text, a field
appeared or vanished, a column's distribution moved, the rows arrived hours
after their event time. :class:`QualityProfiler` reads every row as it is
(whatever fields it carries, before any schema check), keeps per source (the
``schema.key_field``: the table or topic) and tumbling event-time bucket what
it needs, and when the stream's clock passes a bucket's end by ``lateness``
turns it into *readings*, one per measure, in long format (``metric`` names
the measure, ``value`` holds it):

- ``rows``: readable rows in the bucket (volume collapse or surge);
- ``rejected.<code>``: the share of the source's rows refused for that reason
  (``bad_time``: no readable event time; ``late``: for a bucket already
  closed; ``out_of_window``: too far ahead of the clock); each refused row is
  also a dead letter with its reason;
- ``lag_s``: the median lag of arrival (``arrival_field``) behind event time
  (staleness);
- per field ``f``: ``f.null_share`` (null or absent), ``f.wrong_type_share``
  (values not of the field's established type: 30 % of amounts sent as text),
  ``f.drift`` (how far the bucket's histogram is from the latest
  ``reference`` closed buckets', as a chi-square z: ~N(0, 1) when nothing
  changed, whatever the bucket's size; quantile bins for numbers, the
  commonest values for text), for columns of categories ``f.unseen_share``
  (values the reference never saw), and for text columns of ids, emails and
  the like ``f.distinct_share`` (distinct values per value: duplicates).

The series features then watch each (source, measure) like any metric, so the
same calibration, alerts, explanations and routes apply. A *schema change*
(a field added, removed, or its type changed) is not a reading but a notice:
an anomaly on the source, reported once, after which the new shape is
normal. A source's first bucket establishes its fields silently.

Each source keeps its own clock (its latest row's event time): a bucket
closes when its source's rows pass its end by ``lateness``, so a table that
loads hours late is *stale* (its lag shows) rather than late. Readings are
exact for a given row order whatever the batch cuts: a row is late only if
its bucket already closed, buckets close at the row that passes them, and
readings leave in that order (a property test checks it). An idle input's
buckets close by wall time (``close_at``); a file's last ones when it ends.

Good at: the incidents data engineers meet (volume, nulls, types, schema,
drift, staleness) on any table without declaring its columns.
Where it fails: rows are read in Python (about 1.5 µs per field of a row:
~60k rows/s for 11 fields on a busy 2-core VM, plenty for batch loads, not
for a firehose); the
open buckets hold their values until they close and are checkpointed as JSON
(~20 bytes per value); a drift of a column in a few dozen rows is only
seen when large.
Cost: per source and field, ``reference`` summaries of 64 quantiles or 50
commonest values.
"""

from __future__ import annotations

import math
import time
from collections import Counter, deque
from typing import Any

import msgspec
import numpy as np

from tocsin.batch import EventBatch
from tocsin.decode import RAW_FIELD, DeadLetter, _iso_or_nan
from tocsin.engine.bounds import wilson_lower_bound
from tocsin.sources.base import SourceBatch
from tocsin.spec import PipelineSpec
from tocsin.spec.quality import READING_METRIC, READING_VALUE
from tocsin.vocabulary import score_100

_LINES = msgspec.json.Decoder()

#: why a row of a source was refused, as the reading ``rejected.<code>`` (also the dead letter's code)
REJECT_CODES = ("bad_time", "late", "out_of_window")
#: a field's kinds: what its non-null values are
NUMBER, TEXT, OTHER = "number", "text", "other"
#: how fast a field's usual presence follows the buckets, and how unlikely its absence must be to call it removed
PRESENCE_ALPHA, REMOVAL_CHANCE = 0.1, 1e-3
#: values a column's drift needs in a bucket (its z accounts for the bucket's size; this keeps it away from tiny ones)
DRIFT_MIN_VALUES = 10
#: points of a closed bucket's numeric summary, and commonest values of a text one (the drift reference)
SUMMARY_POINTS, SUMMARY_VALUES = 64, 50


def kind_of(value: Any) -> str:
    """A value's kind: a number (JSON integers and floats), text (strings and booleans, as categories) or other."""
    if isinstance(value, (bool, str)):
        return TEXT
    if isinstance(value, (int, float)):
        return NUMBER
    return OTHER


class _Field:
    """One field's values in one open bucket."""

    __slots__ = ("numbers", "others", "present", "texts")

    def __init__(self) -> None:
        self.present = 0  # rows carrying the field (null or not)
        self.numbers: list[float] = []
        self.texts: list[str] = []
        self.others = 0

    def add(self, value: Any) -> None:
        self.present += 1
        if value is None or (isinstance(value, float) and not math.isfinite(value)):
            return  # null (a NaN or infinity from a record or a Parquet file is no number either)
        kind = kind_of(value)
        if kind == NUMBER:
            self.numbers.append(float(value))
        elif kind == TEXT:
            self.texts.append(value if isinstance(value, str) else ("true" if value else "false"))
        else:
            self.others += 1

    def count(self, kind: str) -> int:
        return len(self.numbers) if kind == NUMBER else len(self.texts) if kind == TEXT else self.others

    @property
    def non_null(self) -> int:
        return len(self.numbers) + len(self.texts) + self.others

    def dominant(self) -> str:
        counts = {NUMBER: len(self.numbers), TEXT: len(self.texts), OTHER: self.others}
        return max(counts, key=counts.__getitem__)

    def as_json(self) -> list[Any]:
        return [self.present, self.numbers, self.texts, self.others]

    @classmethod
    def from_json(cls, data: list[Any]) -> _Field:
        field = cls()
        field.present, field.numbers, field.texts, field.others = int(data[0]), list(data[1]), list(data[2]), int(data[3])
        return field


class _Bucket:
    """One source's open bucket: its readable rows' fields, its refusals, lags and label."""

    __slots__ = ("fields", "label", "lags", "rejected", "rows")

    def __init__(self) -> None:
        self.rows = 0
        self.rejected: Counter[str] = Counter()
        self.lags: list[float] = []
        self.fields: dict[str, _Field] = {}
        self.label = 0

    def as_json(self) -> list[Any]:
        return [self.rows, dict(self.rejected), self.lags, {k: f.as_json() for k, f in self.fields.items()}, self.label]

    @classmethod
    def from_json(cls, data: list[Any]) -> _Bucket:
        bucket = cls()
        bucket.rows, bucket.lags, bucket.label = int(data[0]), list(data[2]), int(data[4])
        bucket.rejected = Counter({k: int(v) for k, v in data[1].items()})
        bucket.fields = {k: _Field.from_json(v) for k, v in data[3].items()}
        return bucket


class QualityProfiler:
    """Rows in, per-(source, bucket) readings, dead letters and schema notices out; see the module docstring.

    >>> from tocsin.spec import parse_spec
    >>> spec = parse_spec({"name": "dq", "source": {"kind": "file", "path": "rows.jsonl"},
    ...     "schema": {"id_field": None, "key_field": "table", "time_field": "ts"},
    ...     "quality": {"every": "1h", "lateness": "1m"},
    ...     "features": [{"kind": "series", "field": "value", "metric_field": "metric"}],
    ...     "detector": {"kind": "max_surprise"}})
    >>> profiler = QualityProfiler(spec)   # drift waits for a full reference (12 closed buckets)
    >>> rows = [{"table": "orders", "ts": 60.0 * i, "amount": 10.0 + i % 7, "country": "FR" if i % 3 else None}
    ...         for i in range(60)] + [{"table": "orders", "ts": 3_700.0, "amount": 1.0}]
    >>> readings, dead, notices = profiler.fold_records(rows, np.arange(61))
    >>> round(float(dict(zip(readings.categorical["metric"], readings.numeric["value"]))["country.null_share"]), 3)
    0.333
    >>> int(dict(zip(readings.categorical["metric"], readings.numeric["value"]))["rows"]), dead, notices
    (60, [], [])
    """

    def __init__(self, spec: PipelineSpec, source: str = "input") -> None:
        assert spec.quality is not None
        self.spec = spec.quality
        self.schema = spec.event_schema
        self.source = source
        self.max_ahead = spec.admission.max_ahead
        self._time_scale = 0.001 if self.schema.time_format == "epoch_ms" else 1.0
        skip = {self.schema.key_field, self.schema.time_field, self.schema.id_field, self.schema.label_field,
                self.spec.arrival_field, *self.spec.ignore}
        self._skip = {name for name in skip if name is not None}
        self._only = set(self.spec.columns) if self.spec.columns is not None else None
        self.severity = self.spec.schema_severity
        self.notice_score = spec.severity_cutoff(self.severity)
        #: the stream's event-time clock: the latest event time of a readable row
        self.clock = -math.inf
        #: each source's clock: a bucket closes when its own source's rows pass its end by ``lateness`` (a table
        #: loading hours late is stale, not late: its rows still land in their buckets)
        self.clocks: dict[str, float] = {}
        #: open buckets by (source, bucket start)
        self.open: dict[tuple[str, float], _Bucket] = {}
        #: each source's established fields and their kinds
        self.known: dict[str, dict[str, str]] = {}
        #: each source's established fields' usual share of rows carrying them (a removal must be unlikely by chance)
        self.presence: dict[str, dict[str, float]] = {}
        #: each source's drift references ("number:amount"): the summaries of the field's latest closed buckets
        self.reference: dict[str, dict[str, deque[list[Any]]]] = {}
        self.closed_until: dict[str, float] = {}
        #: derived, not saved: each source's oldest open bucket start, and each text reference's pooled counts
        self._oldest: dict[str, float] = {}
        self._pooled: dict[tuple[str, str], Counter[str]] = {}
        #: rows refused before their source had a clock, by code: counted in its first bucket
        self.unplaced: dict[str, Counter[str]] = {}

    # --- rows in ------------------------------------------------------------

    def fold(self, raw: SourceBatch) -> tuple[EventBatch, list[DeadLetter], list[dict[str, Any]]]:
        """Profile a source batch's rows; returns the closed buckets' readings (time order), dead letters
        and schema notices."""
        if raw.lines is not None:
            return self.fold_lines(raw.lines, raw.positions)
        if raw.records is not None:
            return self.fold_records(raw.records, raw.positions)
        if raw.table is not None:
            return self.fold_records(raw.table.to_pylist(), raw.positions)
        if raw.events is not None and RAW_FIELD in raw.events.extra:
            return self.fold_lines(list(raw.events.extra[RAW_FIELD]), raw.events.positions)
        raise ValueError("a quality pipeline profiles raw rows (JSON lines, records or a table); this source gives decoded events")

    def fold_lines(self, lines: list[bytes], positions: np.ndarray) -> tuple[EventBatch, list[DeadLetter], list[dict[str, Any]]]:
        dead: list[DeadLetter] = []
        try:  # one value per line: a line holding two objects, or half of one, is malformed whatever the batch cut
            records: list[Any] = _LINES.decode_lines(b"\n".join(lines)) if lines else []
            if len(records) != len(lines):
                raise msgspec.DecodeError("record count mismatch")
        except msgspec.DecodeError:
            records = []
            for line in lines:
                try:
                    records.append(msgspec.json.decode(line))
                except msgspec.DecodeError as error:
                    records.append(_Unreadable(f"not JSON: {error}"))
        return self._fold(records, positions, lines, dead)

    def fold_records(self, records: list[Any], positions: np.ndarray) -> tuple[EventBatch, list[DeadLetter], list[dict[str, Any]]]:
        return self._fold(records, positions, None, [])

    def _fold(self, records: list[Any], positions: np.ndarray, lines: list[bytes] | None,
              dead: list[DeadLetter]) -> tuple[EventBatch, list[DeadLetter], list[dict[str, Any]]]:
        schema, every, lateness = self.schema, self.spec.every, self.spec.lateness
        key_field, time_field, arrival, label_field = schema.key_field, schema.time_field, self.spec.arrival_field, schema.label_field
        closed: list[tuple[str, float, _Bucket]] = []

        def refuse(i: int, code: str, reason: str) -> None:
            raw = lines[i] if lines is not None else msgspec.json.encode(records[i], enc_hook=str)
            dead.append(DeadLetter(source=self.source, position=int(positions[i]), reason=reason,
                                   raw=bytes(raw)[: schema.max_event_bytes], code=code))

        for i, row in enumerate(records):
            if not isinstance(row, dict):
                refuse(i, "malformed", row.reason if isinstance(row, _Unreadable) else "record is not a JSON object")
                continue
            key = row.get(key_field)
            if isinstance(key, bool) or not isinstance(key, (str, int)) or key == "":
                refuse(i, "missing_field" if key is None else "wrong_type",
                       f"field `{key_field}`: every row must name its source (text or an integer), got {key!r}")
                continue
            key = str(key)
            clock = self.clocks.get(key, -math.inf)
            when = self._time(row.get(time_field))
            if not math.isfinite(when):
                self._refused(key, "bad_time")
                refuse(i, "bad_time", f"field `{time_field}`: no readable event time in {row.get(time_field)!r}")
                continue
            if self.max_ahead is not None and math.isfinite(clock) and when > clock + self.max_ahead:
                self._refused(key, "out_of_window")
                refuse(i, "out_of_window", f"field `{time_field}`: {when:.3f} is more than {self.max_ahead:g} s after "
                                           f"{key}'s clock {clock:.3f} (admission.max_ahead)")
                continue
            start = math.floor(when / every) * every
            if start < self.closed_until.get(key, -math.inf):
                self._refused(key, "late")
                refuse(i, "late", f"field `{time_field}`: {when:.3f} falls in a bucket of {key} that closed (buckets of "
                                  f"{every:g} s close when the source's rows are {lateness:g} s past their end; see quality.lateness)")
                continue
            bucket = self.open.get((key, start))
            if bucket is None:
                bucket = self.open[(key, start)] = _Bucket()
                self._oldest[key] = min(self._oldest.get(key, math.inf), start)
                if key in self.unplaced:
                    bucket.rejected.update(self.unplaced.pop(key))
            bucket.rows += 1
            if label_field is not None and row.get(label_field):
                bucket.label = 1
            if arrival is not None:
                arrived = self._time(row.get(arrival))
                if math.isfinite(arrived):
                    bucket.lags.append(arrived - when)
            fields = bucket.fields
            for name, value in row.items():
                if name in self._skip or (self._only is not None and name not in self._only):
                    continue
                field = fields.get(name)
                if field is None:
                    field = fields[name] = _Field()
                field.add(value)
            if when > clock:
                self.clocks[key] = when
                self.clock = max(self.clock, when)
                closed += self._passed(key, when - lateness)
        readings, notices = self._readings(closed)
        return readings, sorted(dead, key=lambda d: d.position), notices

    def _time(self, value: Any) -> float:
        if isinstance(value, bool) or value is None:
            return math.nan
        if self.schema.time_format == "iso8601":
            return _iso_or_nan(value)
        if isinstance(value, (int, float)):
            seconds = float(value) * self._time_scale
            return seconds if math.isfinite(seconds) else math.nan
        return math.nan

    def _refused(self, key: str, code: str) -> None:
        """Count a refused row of ``key`` in its latest open bucket, or a new one at its clock; before the source
        has any clock, in the first bucket it opens (a refused row has no time of its own to place it)."""
        starts = [start for k, start in self.open if k == key]
        clock = self.clocks.get(key, -math.inf)
        if not starts and not math.isfinite(clock):
            self.unplaced.setdefault(key, Counter())[code] += 1
            return
        start = max(starts) if starts else max(math.floor(clock / self.spec.every) * self.spec.every,
                                               self.closed_until.get(key, -math.inf))
        bucket = self.open.get((key, start))
        if bucket is None:
            bucket = self.open[(key, start)] = _Bucket()
            self._oldest[key] = min(self._oldest.get(key, math.inf), start)
        bucket.rejected[code] += 1

    # --- buckets out --------------------------------------------------------

    def _passed(self, key: str | None, until: float) -> list[tuple[str, float, _Bucket]]:
        """Close the open buckets (of ``key``, or of every source) ending at or before ``until``, oldest first."""
        every = self.spec.every
        if key is not None and self._oldest.get(key, math.inf) + every > until:
            return []  # the common case, checked at every row: nothing of this source is due
        due = sorted((start, k) for k, start in self.open if (key is None or k == key) and start + every <= until)
        for start, k in due:
            self.closed_until[k] = max(self.closed_until.get(k, -math.inf), start + every)
        closed = [(k, start, self.open.pop((k, start))) for start, k in due]
        for k in {k for _start, k in due}:
            self._oldest[k] = min((start for kk, start in self.open if kk == k), default=math.inf)
        return closed

    def close_at(self, clock: float) -> tuple[EventBatch, list[dict[str, Any]]]:
        """Close every source's buckets that ``clock`` (an idle input's, moved by wall time) passed by ``lateness``."""
        if math.isfinite(clock):
            self.clock = max(self.clock, clock)
        return self._readings(self._passed(None, clock - self.spec.lateness))

    def close_all(self) -> tuple[EventBatch, list[dict[str, Any]]]:
        """Close every open bucket as it is (the input ended)."""
        return self._readings(self._passed(None, math.inf))

    def _readings(self, closed: list[tuple[str, float, _Bucket]]) -> tuple[EventBatch, list[dict[str, Any]]]:
        """The closed buckets' readings, in the order they closed (so batch cuts change nothing), and notices."""
        keys: list[str] = []
        times: list[float] = []
        metrics: list[str] = []
        values: list[float] = []
        labels: list[int] = []
        notices: list[dict[str, Any]] = []
        for key, start, bucket in closed:
            measured = self._measure(key, start, bucket, notices)
            for metric, value in sorted(measured.items()):
                keys.append(key)
                times.append(start)
                metrics.append(metric)
                values.append(value)
                labels.append(bucket.label)
        n = len(keys)
        ids = np.empty(n, dtype=object)
        ids[:] = [f"{k}:{round(t * 1000)}:{m}" for k, t, m in zip(keys, times, metrics)]
        key_column = np.empty(n, dtype=object)
        key_column[:] = keys
        metric_column = np.empty(n, dtype=object)
        metric_column[:] = metrics
        readings = EventBatch(ids=ids, keys=key_column, times=np.asarray(times, dtype=np.float64),
                              numeric={READING_VALUE: np.asarray(values, dtype=np.float64)},
                              categorical={READING_METRIC: metric_column}, positions=np.full(n, -1, dtype=np.int64),
                              labels=np.asarray(labels, dtype=np.int8))
        return readings, notices

    def _measure(self, key: str, start: float, bucket: _Bucket, notices: list[dict[str, Any]]) -> dict[str, float]:
        """The bucket's readings; schema changes against the source's established fields become notices."""
        rows = bucket.rows
        refused = sum(bucket.rejected.values())
        measured: dict[str, float] = {"rows": float(rows)}
        for code in REJECT_CODES:
            measured[f"rejected.{code}"] = bucket.rejected[code] / (rows + refused) if rows + refused else 0.0
        if self.spec.arrival_field is not None and bucket.lags:
            measured["lag_s"] = float(np.median(bucket.lags))
        if rows == 0:
            return measured
        first = key not in self.known
        known = self.known.setdefault(key, {})
        presence = self.presence.setdefault(key, {})
        references = self.reference.setdefault(key, {})
        for name in sorted(set(known) | set(bucket.fields)):
            field = bucket.fields.get(name)
            present = field.present if field is not None else 0
            usual = presence.get(name)
            if usual is not None:
                presence[name] += PRESENCE_ALPHA * (present / rows - usual)
            if present == 0:
                # removed when a field usually in this share of rows missing from all of them is a 1-in-1,000 chance
                if name in known and (1.0 - (usual if usual is not None else 1.0)) ** rows < REMOVAL_CHANCE:
                    notices.append(self._notice(key, start, name, f"field `{name}` removed: absent from all {rows:,} rows "
                                                                   f"of {key} at {humane_time(start)}", "removed"))
                    del known[name]
                    presence.pop(name, None)
                continue
            kind = field.dominant() if field.non_null else None
            if name in known and known[name] is None:  # known, so far only as nulls: its first values set its type
                known[name] = kind
                if kind is None:
                    continue
            elif name not in known:
                if kind is None and not first:
                    continue  # a new field with only nulls so far: nothing to report yet
                if not first:
                    share = field.present / rows
                    notices.append(self._notice(key, start, name, f"field `{name}` added to {key} at {humane_time(start)} "
                                                                   f"({kind}, in {share:.0%} of rows)", "added"))
                known[name] = kind
                presence[name] = present / rows
                if kind is None:
                    continue
            elif kind is not None and kind != known[name] and field.count(kind) >= min(5, self.spec.min_rows) \
                    and field.count(kind) >= 0.9 * field.non_null:
                notices.append(self._notice(key, start, name, f"field `{name}` of {key} changed type from {known[name]} to "
                                                               f"{kind} at {humane_time(start)} ({field.count(kind):,} of "
                                                               f"{field.non_null:,} values)", "type_changed"))
                known[name] = kind
            established = known[name]
            if rows >= self.spec.min_rows:  # a share of a handful of rows is noise: a small bucket has none
                measured[f"{name}.null_share"] = self._share(rows - field.non_null, rows)
                if field.non_null:
                    measured[f"{name}.wrong_type_share"] = self._share(field.non_null - field.count(established), field.non_null)
            self._drift(key, name, established, field, references, measured)
        return measured

    def _share(self, hits: int, out_of: int) -> float:
        """``hits`` of ``out_of`` rows, as a share or as what the share is at least (``quality.shares``)."""
        share = hits / out_of
        if self.spec.shares == "lower_bound":
            return float(wilson_lower_bound(np.array([share]), np.array([out_of]))[0])
        return share

    def _drift(self, key: str, name: str, kind: str, field: _Field, references: dict[str, deque[list[Any]]],
               measured: dict[str, float]) -> None:
        # one reference per field and kind: a field back to its type after an incident finds its old reference
        ref = f"{kind}:{name}"
        history = references.setdefault(ref, deque(maxlen=self.spec.reference))
        if kind == NUMBER and field.numbers:
            values = np.asarray(field.numbers, dtype=np.float64)
            if len(history) == history.maxlen and len(values) >= DRIFT_MIN_VALUES:
                measured[f"{name}.drift"] = numeric_drift(np.concatenate([np.asarray(h) for h in history]), values, self.spec.bins)
            # observed values only (inverted CDF): interpolated points would fall between a discrete column's values
            history.append(np.quantile(values, np.linspace(0, 1, SUMMARY_POINTS), method="inverted_cdf").tolist())
        elif kind == TEXT and field.texts:
            counts = Counter(field.texts)
            pooled = self._pooled.get((key, ref))
            if pooled is None:  # the reference's counts, kept up to date as summaries come and go (rebuilt after a load)
                pooled = self._pooled[(key, ref)] = Counter()
                for summary in history:
                    pooled.update(dict(summary[0]))
            if len(history) == history.maxlen and len(field.texts) >= DRIFT_MIN_VALUES:
                drift = text_drift(pooled, counts, self.spec.bins)
                if drift is not None:  # a column of categories, not of ids
                    measured[f"{name}.drift"] = drift
                    seen = set(pooled)
                    measured[f"{name}.unseen_share"] = self._share(sum(n for value, n in counts.items() if value not in seen),
                                                                   len(field.texts))
            top = sum(n for _value, n in counts.most_common(self.spec.bins - 1))
            if top < 0.5 * len(field.texts) and len(field.texts) >= self.spec.min_rows:  # ids, emails: repeats are duplicates
                measured[f"{name}.distinct_share"] = len(counts) / len(field.texts)
            summary = counts.most_common(SUMMARY_VALUES)  # counts (integers: the running pool stays exact)
            if len(history) == history.maxlen:
                oldest = dict(history[0][0])
                pooled.subtract(oldest)
                for value in oldest:
                    if pooled[value] <= 0:
                        del pooled[value]
            history.append([summary])
            pooled.update(dict(summary))

    def _notice(self, key: str, start: float, name: str, text: str, change: str) -> dict[str, Any]:
        return {
            "event_id": f"schema:{key}:{round(start * 1000)}:{change}:{name}",
            "entity": key, "event_time": float(start), "score": self.notice_score, "score_100": score_100(self.notice_score),
            "raw_score": 1.0, "severity": self.severity, "detector": "schema", "fields": {"field": name, "change": change},
            "label": None, "explanation": [{"feature": f"{name}.schema", "value": 1.0, "contribution": 1.0, "text": text}],
        }

    # --- checkpoint ---------------------------------------------------------

    def state_dict(self) -> dict[str, np.ndarray]:
        """Everything as one JSON document in a byte array (open buckets hold the rows' values until they close)."""
        state = {
            "clock": self.clock if math.isfinite(self.clock) else None,
            "clocks": self.clocks,
            "open": [[key, start, bucket.as_json()] for (key, start), bucket in self.open.items()],
            "known": self.known,
            "presence": self.presence,
            "reference": {key: {name: [list(h), h.maxlen] for name, h in fields.items()} for key, fields in self.reference.items()},
            "closed_until": self.closed_until,
            "unplaced": {key: dict(counts) for key, counts in self.unplaced.items()},
        }
        return {"json": np.frombuffer(msgspec.json.encode(state), dtype=np.uint8).copy()}

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        data = msgspec.json.decode(np.asarray(state["json"], dtype=np.uint8).tobytes())
        self.clock = -math.inf if data["clock"] is None else float(data["clock"])
        self.clocks = {key: float(v) for key, v in data["clocks"].items()}
        self.open = {(key, float(start)): _Bucket.from_json(bucket) for key, start, bucket in data["open"]}
        self.known = {key: dict(fields) for key, fields in data["known"].items()}
        self.presence = {key: {name: float(v) for name, v in fields.items()} for key, fields in data["presence"].items()}
        self.reference = {key: {name: deque([_restore(s) for s in summaries], maxlen=self.spec.reference)
                                for name, (summaries, _maxlen) in fields.items()} for key, fields in data["reference"].items()}
        self.closed_until = {key: float(v) for key, v in data["closed_until"].items()}
        self._pooled = {}
        self._oldest = {}
        for key, start in self.open:
            self._oldest[key] = min(self._oldest.get(key, math.inf), start)
        self.unplaced = {key: Counter({code: int(n) for code, n in counts.items()}) for key, counts in data.get("unplaced", {}).items()}


def _restore(summary: list[Any]) -> list[Any]:
    """A summary as JSON gave it back: a text summary's pairs are lists again (tuples before)."""
    if summary and isinstance(summary[0], list) and summary[0] and isinstance(summary[0][0], list):
        return [[(value, share) for value, share in summary[0]]]
    return summary


def humane_time(epoch: float) -> str:
    """A bucket's start as people read it in UTC: ``2026-01-03 14:00``."""
    return time.strftime("%Y-%m-%d %H:%M", time.gmtime(epoch))


class _Unreadable:
    """A line that is not JSON, with why (it becomes a dead letter)."""

    __slots__ = ("reason",)

    def __init__(self, reason: str) -> None:
        self.reason = reason


def _chi_square_z(expected: np.ndarray, actual: np.ndarray) -> float:
    """How far a bucket's histogram ``actual`` (counts) is from the reference shares ``expected``, as a
    standard normal deviate: Pearson's chi-square over the bins, turned into z by Wilson-Hilferty. It is
    ~N(0, 1) under no change whatever the bucket's size, where PSI's noise grows as rows shrink (a
    37-row night batch read as drift)."""
    n = actual.sum()
    bins = len(expected)
    if n <= 0 or bins < 2:
        return 0.0
    shares = (expected + 1e-3) / (expected.sum() + 1e-3 * bins)
    chi2 = float(np.sum((actual - n * shares) ** 2 / (n * shares)))
    k = bins - 1
    return float(((chi2 / k) ** (1 / 3) - (1 - 2 / (9 * k))) / math.sqrt(2 / (9 * k)))


def numeric_drift(reference: np.ndarray, values: np.ndarray, bins: int) -> float:
    """Drift of ``values`` from ``reference`` over the reference's quantile bins (ties merged), as a z.

    >>> rng = np.random.default_rng(0)
    >>> reference = rng.normal(0, 1, 5_000)
    >>> round(numeric_drift(reference, rng.normal(0, 1, 40), 10), 1), round(numeric_drift(reference, rng.normal(1, 1, 40), 10), 1)
    (1.3, 5.6)
    """
    edges = np.unique(np.quantile(reference, np.linspace(0, 1, bins + 1)[1:-1]))
    expected = np.bincount(np.searchsorted(edges, reference, side="right"), minlength=len(edges) + 1).astype(np.float64)
    actual = np.bincount(np.searchsorted(edges, values, side="right"), minlength=len(edges) + 1).astype(np.float64)
    return _chi_square_z(expected, actual)


def text_drift(reference: Counter[str], counts: Counter[str], bins: int) -> float | None:
    """Drift of a text column's ``counts`` from ``reference`` shares over the reference's ``bins - 1`` commonest
    values and one bin for every other value, as a z; None for a column whose commonest values hold under
    half its rows (ids, emails: no distribution to drift)."""
    top = [value for value, _ in reference.most_common(bins - 1)]
    total = sum(reference.values())
    held = sum(reference[v] for v in top)
    if held < 0.5 * total:
        return None
    expected = np.array([reference[v] for v in top] + [max(total - held, 0.0)], dtype=np.float64)
    actual = np.array([counts.get(v, 0) for v in top] + [sum(counts.values()) - sum(counts.get(v, 0) for v in top)], dtype=np.float64)
    return _chi_square_z(expected, actual)
