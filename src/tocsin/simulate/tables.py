"""A deterministic, labelled stream of table rows loaded in batches, for data-quality monitoring.

Data engineers point tocsin at the rows flowing through their pipelines. This
simulator draws ``tables`` tables (``orders``, ``payments``, ... each with
its own columns and habits) from ``seed``; each table loads one batch every
``report_every`` seconds (1 h by default) holding the rows whose event time
falls in the hour before, a few minutes after that hour ends. Rows are raw
JSON objects (``EventBatch.extra["_raw"]``), because the incidents are in the
shape of the rows themselves: nulls, types, fields. ``is_incident`` and
``incident`` are the ground truth on rows; :meth:`TableLoadSimulator.incidents`
is the incident table.

Example
-------
>>> from tocsin.simulate.tables import TableLoadSimulator
>>> sim = TableLoadSimulator(tables=4, incident_rate=1.0, warmup_days=0.5, seed=3)
>>> batch = sim.generate(5_000)
>>> len(batch), sorted(set(batch.keys))
(5000, ['invoices', 'orders', 'payments', 'shipments'])
>>> import json; row = json.loads(batch.extra["_raw"][0]); sorted(row)[:4]
['amount', 'country', 'discount', 'id']
>>> resumed = next(sim.batches(700, start_position=2_000))
>>> resumed.ids.tolist() == batch.ids[2_000:2_700].tolist()
True
>>> sorted({i["kind"] for i in sim.incidents(sim.start_time + 5 * 86_400)})  # doctest: +NORMALIZE_WHITESPACE
['distribution_shift', 'field_added', 'field_missing', 'null_surge', 'stale_batch', 'type_change', 'volume_collapse']

What the stream looks like
--------------------------
*Tables.* Table ``t`` has an ``id`` (unique text), a ``user_id`` (text, 5,000
users), an ``amount`` (lognormal around its own median) and three or four of:
``quantity`` (1-5), ``country`` (eight codes, its own mix), ``status`` (four
values, its own mix), ``email`` (text, its own null share up to 5 %),
``discount`` (a number, null in ~60 % of rows), ``score`` (normal 50 ± 10),
``channel`` (web/app/store). Every row also carries ``table``, ``ts`` (event
time, epoch seconds) and ``loaded_at`` (when its batch loaded).

*Volume.* A table's hourly batch holds Poisson(base × (0.25 + 0.75 × load))
rows, where base is lognormal around 150 per table and load the business-hour
curve of :func:`tocsin.simulate.daily.business_load` (weekends at 0.4).

*Loads.* The batch of hour ``h`` loads at ``h + 1 h + d_t + u`` (``d_t``
2-10 min per table, ``u`` up to a minute); the stream is in load order, each
batch's rows in event-time order.

Incidents (after ``warmup_days``; each covers whole batches, from its start
hour for 1-6 batches; ``incident_rate`` per table per day, 0.25 by default)
--------------------------------------------------------------------------
- ``volume_collapse``: the batches keep 2-20 % of their rows;
- ``null_surge``: one column is null in 30-90 % of rows;
- ``type_change``: a numeric column arrives as text (``"12.50"``);
- ``field_missing``: a column is absent from every row;
- ``field_added``: a new text field (``promo_code``) appears in every row;
- ``distribution_shift``: ``amount`` is multiplied by 2-4 (a currency bug),
  or a text column collapses onto one value;
- ``stale_batch``: the table's pipeline stalls for 2-6 hours; its batches
  wait and load together when it resumes (their rows' event times lag their
  arrival by hours).
"""

from __future__ import annotations

import functools
from datetime import datetime
from pathlib import Path

import msgspec
import numpy as np

from tocsin.batch import EventBatch
from tocsin.decode import RAW_FIELD
from tocsin.simulate.daily import (
    COUNT_STREAM,
    DETAIL_STREAM,
    FLEET_STREAM,
    SECONDS_PER_DAY,
    FieldInfo,
    Incidents,
    IncidentSimulator,
    business_load,
)

INCIDENT_KINDS = ("volume_collapse", "null_surge", "type_change", "field_missing", "field_added", "distribution_shift", "stale_batch")
INCIDENT_SHARE = (0.16, 0.16, 0.14, 0.14, 0.12, 0.16, 0.12)
#: each kind's duration range in batches
BATCHES = ((1, 3), (1, 4), (1, 6), (1, 6), (1, 6), (2, 6), (2, 6))

TABLE_NAMES = ("orders", "payments", "shipments", "invoices", "refunds", "sessions", "users", "reviews", "carts",
               "tickets", "clicks", "inventory")
OPTIONAL_COLUMNS = ("quantity", "country", "status", "email", "discount", "score", "channel")
NUMERIC_COLUMNS = ("amount", "quantity", "discount", "score")
COUNTRIES = ("FR", "DE", "US", "GB", "ES", "IT", "NL", "BR")
STATUSES = ("ok", "pending", "failed", "cancelled")
CHANNELS = ("web", "app", "store")
ADDED_FIELD = "promo_code"

#: the fields of a row (the raw JSON has these, minus those a table lacks, plus incident changes)
FIELDS: tuple[FieldInfo, ...] = (
    FieldInfo("table", "str", "keys", "the table (the source the rows belong to)"),
    FieldInfo("ts", "float", "times", "event time, epoch seconds"),
    FieldInfo("is_incident", "int8", "labels", "1 when the row's batch is part of an incident"),
    FieldInfo("incident", "str", "extra['incident']", "the incident kind, or empty"),
)


class TableLoadSimulator(IncidentSimulator):
    """Hourly batch loads of ``tables`` tables with data-quality incidents; see the module docstring."""

    INCIDENT_KINDS = INCIDENT_KINDS
    INCIDENT_SHARE = INCIDENT_SHARE
    FIELDS = FIELDS
    FORMATS = ("jsonl",)

    def __init__(self, tables: int = 12, report_every: float = 3_600.0, incident_rate: float = 0.25,
                 warmup_days: float = 15.0, start: str | float | datetime = "2026-01-01T00:00:00Z", seed: int = 7) -> None:
        if tables < 1:
            raise ValueError(f"tables must be >= 1, got {tables}")
        if not 600 <= report_every <= 86_400 or not (SECONDS_PER_DAY / report_every).is_integer():
            raise ValueError(f"report_every must divide a day and be 10 min to 1 day, got {report_every}")
        self.tables = int(tables)
        self.report_every = float(report_every)
        every = self.report_every
        durations = tuple((lo * every - 1, hi * every - 1) for lo, hi in BATCHES)
        self._init_incidents(incident_rate, warmup_days, start, seed, durations, per="table")
        self._entity_names = np.array([TABLE_NAMES[t % 12] + (f"_{t // 12 + 1}" if t >= 12 else "") for t in range(tables)],
                                      dtype=object)
        self._slots = int(SECONDS_PER_DAY / every)
        rng = self._rng(FLEET_STREAM)
        self._base = np.exp(rng.normal(np.log(150.0), 0.5, tables))
        self._delay = rng.uniform(120.0, 600.0, tables)
        self._median_amount = np.exp(rng.normal(np.log(40.0), 0.8, tables))
        self._columns = [("id", "user_id", "amount", *sorted(rng.choice(OPTIONAL_COLUMNS, size=3 + int(rng.random() < 0.5),
                                                                       replace=False).tolist(), key=OPTIONAL_COLUMNS.index))
                         for _ in range(tables)]
        self._mix = {name: rng.dirichlet(np.full(len(values), 2.0), size=tables)
                     for name, values in (("country", COUNTRIES), ("status", STATUSES), ("channel", CHANNELS))}
        self._email_nulls = rng.uniform(0.0, 0.05, tables)

    # --- incidents: whole batches -------------------------------------------

    def _plan_details(self, rng: np.random.Generator, kind: np.ndarray, entity: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        level = rng.random(len(kind))
        part = rng.integers(0, 1 << 30, len(kind))
        return level, part

    @functools.lru_cache(maxsize=64)  # noqa: B019 - a few days' plans, each read many times
    def _plan(self, index: int) -> Incidents:
        """Day ``index``'s incidents, snapped to whole batches: each starts at the first load hour after its
        drawn start and covers its drawn duration, rounded up to batches."""
        plan = super()._plan(index)
        every = self.report_every
        start = np.ceil(plan.start / every) * every
        end = start + np.ceil((plan.end - plan.start) / every) * every
        return Incidents(plan.kind, start, end, plan.entity, plan.level, plan.part)

    def _describe(self, kind: int, entity: int, part: int) -> str:
        return str(self._entity_names[entity])

    def _column_of(self, kind: str, table: int, part: int) -> str:
        """The column an incident of ``kind`` on ``table`` touches (``part`` chooses among the candidates)."""
        columns = [c for c in self._columns[table] if c != "id"]
        if kind == "type_change":
            columns = [c for c in columns if c in NUMERIC_COLUMNS]
        elif kind == "distribution_shift":
            columns = ["amount"] + [c for c in columns if c in ("country", "status", "channel")]
        elif kind == "null_surge":
            columns = [c for c in columns if c != "discount"]  # already mostly null
        return columns[part % len(columns)]

    # --- batches ------------------------------------------------------------

    def _hours(self, index: int) -> np.ndarray:
        """Global indices of the batch hours whose load may fall in day ``index`` (that day's and the day before's)."""
        first = max(0, (index - 1) * self._slots)
        return np.arange(first, (index + 1) * self._slots)

    @functools.lru_cache(maxsize=64)  # noqa: B019
    def _hour_counts(self, day: int) -> np.ndarray:
        """Rows of each (table, hour) of day ``day`` before incidents: [tables, slots]."""
        rng = self._rng(COUNT_STREAM, day)
        hours = self.start_time + (day * self._slots + np.arange(self._slots)) * self.report_every
        load = business_load(hours + self.report_every / 2, weekend_load=0.4)
        mean = self._base[:, None] * (0.25 + 0.75 * load[None, :]) * self.report_every / 3_600.0
        return rng.poisson(mean)

    def _effects(self, table: int, hour_start: float) -> list[tuple[str, float, int, float]]:
        """The incidents touching the batch of ``table`` for the hour starting at ``hour_start``: (kind, level, part, end)."""
        day = int((hour_start - self.start_time) // SECONDS_PER_DAY)
        effects = []
        for index in (day - 1, day):
            if index < 0:
                continue
            plan = self._plan(index)
            hit = (plan.entity == table) & (plan.start <= hour_start) & (hour_start < plan.end)
            for k in np.flatnonzero(hit).tolist():
                effects.append((INCIDENT_KINDS[plan.kind[k]], float(plan.level[k]), int(plan.part[k]), float(plan.end[k])))
        return effects

    @functools.lru_cache(maxsize=64)  # noqa: B019
    def _loads(self, index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The batches loading in day ``index``: (table, hour, load time, rows), in load order."""
        every = self.report_every
        day_start = self.start_time + index * SECONDS_PER_DAY
        tables, hours, loads, rows = [], [], [], []
        for hour in self._hours(index).tolist():
            hour_start = self.start_time + hour * every
            day, slot = divmod(hour, self._slots)
            counts = self._hour_counts(day)[:, slot]
            jitter = self._rng(DETAIL_STREAM, hour).random(self.tables) * 60.0
            for t in range(self.tables):
                load = hour_start + every + self._delay[t] + jitter[t]
                n = int(counts[t])
                for kind, level, _part, end in self._effects(t, hour_start):
                    if kind == "stale_batch":  # the table's pipeline stalled: its batches wait, then load together
                        load = max(load, end + every + self._delay[t])  # one release time: they load in hour order
                    elif kind == "volume_collapse":
                        n = round(n * (0.02 + 0.18 * level))
                if day_start <= load < day_start + SECONDS_PER_DAY:
                    tables.append(t)
                    hours.append(hour)
                    loads.append(round(load, 3))
                    rows.append(n)
        order = np.lexsort((np.array(hours), np.array(tables), np.array(loads)))
        return tuple(np.asarray(column)[order] for column in (tables, hours, loads, rows))  # type: ignore[return-value]

    def _day_size(self, index: int) -> int:
        return int(self._loads(index)[3].sum())

    def day(self, index: int) -> EventBatch:
        index = self._check_day(index)
        tables, hours, loads, rows = self._loads(index)
        every = self.report_every
        ids, keys, times, labels, kinds, raw = [], [], [], [], [], []
        encode = msgspec.json.Encoder().encode
        for t, hour, load, n in zip(tables.tolist(), hours.tolist(), loads.tolist(), rows.tolist()):
            hour_start = self.start_time + hour * every
            rng = np.random.default_rng([self.seed, 5, t, hour])
            ts = np.sort(np.round(hour_start + rng.random(n) * every, 3))
            columns = self._values(t, n, rng)
            effects = self._effects(t, hour_start)
            kind = ""
            for name, level, part, _end in effects:
                kind = name
                self._apply(name, level, part, t, columns, rng)
            names = list(columns)
            lists = [columns[c] for c in names]
            base = {"table": str(self._entity_names[t]), "loaded_at": load}
            for i in range(n):
                row = {**base, "ts": float(ts[i])}
                for name, values in zip(names, lists):
                    value = values[i]
                    if value is not _ABSENT:
                        row[name] = value
                row["is_incident"] = 1 if kind else 0
                row["incident"] = kind
                raw.append(encode(row))
            ids += [f"{self._entity_names[t]}-{hour}-{i}" for i in range(n)]
            keys += [str(self._entity_names[t])] * n
            times.append(ts)
            labels += [1 if kind else 0] * n
            kinds += [kind] * n
        size = len(ids)
        position = self._day_position(index)

        def objects(values: list) -> np.ndarray:
            array = np.empty(len(values), dtype=object)
            array[:] = values
            return array

        return EventBatch(ids=objects(ids), keys=objects(keys), times=np.concatenate(times) if times else np.empty(0),
                          numeric={}, categorical={}, positions=np.arange(position, position + size, dtype=np.int64),
                          labels=np.asarray(labels, dtype=np.int8), extra={RAW_FIELD: objects(raw), "incident": objects(kinds)})

    def _values(self, t: int, n: int, rng: np.random.Generator) -> dict[str, list]:
        """The normal columns of one batch of ``n`` rows of table ``t`` (None: null)."""
        columns: dict[str, list] = {}
        name = self._entity_names[t]
        for column in self._columns[t]:
            if column == "id":
                values = [f"{name}-{v}" for v in rng.integers(0, 1 << 40, n).tolist()]
            elif column == "user_id":
                values = [f"u{v}" for v in rng.integers(0, 5_000, n).tolist()]
            elif column == "amount":
                values = np.round(self._median_amount[t] * np.exp(rng.normal(0, 0.6, n)), 2).tolist()
            elif column == "quantity":
                values = rng.choice(5, size=n, p=[0.5, 0.25, 0.13, 0.08, 0.04]).__add__(1).tolist()
            elif column == "score":
                values = np.round(rng.normal(50, 10, n), 1).tolist()
            elif column == "discount":
                present = rng.random(n) >= 0.6
                values = [round(v, 2) if keep else None for v, keep in zip(rng.uniform(1, 20, n).tolist(), present.tolist())]
            elif column == "email":
                present = rng.random(n) >= self._email_nulls[t]
                values = [f"user{v}@example.com" if keep else None for v, keep in zip(rng.integers(0, 5_000, n).tolist(), present.tolist())]
            else:
                choices = {"country": COUNTRIES, "status": STATUSES, "channel": CHANNELS}[column]
                values = [choices[v] for v in rng.choice(len(choices), size=n, p=self._mix[column][t]).tolist()]
            columns[column] = values
        return columns

    def _apply(self, kind: str, level: float, part: int, t: int, columns: dict[str, list], rng: np.random.Generator) -> None:
        """Change one batch's columns as incident ``kind`` does (volume and staleness act on the load)."""
        n = len(columns["id"])
        if kind in ("volume_collapse", "stale_batch"):
            return
        if kind == "field_added":
            columns[ADDED_FIELD] = [f"PROMO{v}" for v in rng.integers(0, 50, n).tolist()]
            return
        column = self._column_of(kind, t, part)
        values = columns[column]
        # incidents may overlap on a batch: each touches only the values still of the kind it changes
        if kind == "null_surge":
            share = 0.3 + 0.6 * level
            columns[column] = [None if r < share and v is not _ABSENT else v for v, r in zip(values, rng.random(n).tolist())]
        elif kind == "type_change":
            columns[column] = [f"{v:.2f}" if _is_number(v) else v for v in values]
        elif kind == "field_missing":
            columns[column] = [_ABSENT] * n
        elif kind == "distribution_shift":
            if column == "amount":
                columns[column] = [round(v * (2.0 + 2.0 * level), 2) if _is_number(v) else v for v in values]
            else:
                columns[column] = [values[0]] * n if n else values

    def write(self, batch: EventBatch, path: str | Path, format: str = "jsonl") -> None:
        """The rows as JSON lines, as loaded (the only format that keeps a text value in a numeric column)."""
        if format != "jsonl":
            raise ValueError("the quality scenario writes JSON lines only (.jsonl): its rows change shape, which CSV "
                             "and Parquet columns cannot hold")
        Path(path).write_bytes(b"\n".join(batch.extra[RAW_FIELD].tolist()) + b"\n")


class _Absent:
    """A field a row does not carry at all (not even as null)."""


_ABSENT = _Absent()


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
