"""What every simulator shares: a stream built one simulated day at a time.

A simulator subclasses :class:`DailySimulator` and says two things about day
``i``: how many events it holds (:meth:`DailySimulator._day_size`, cheap, no
event generated) and the events themselves (:meth:`DailySimulator.day`, sorted
by time). The base turns that into an endless stream with global positions
that can be resumed at any position by generating only the days from there on.
Random streams are keyed by ``(seed, stream, day)``, so a day is a function of
the parameters and its index alone. ``from_spec`` reads each constructor
parameter from the simulator source spec's field of the same name, and
:func:`write_fields` writes a batch with the columns a simulator's ``FIELDS`` name.

Simulators of labelled incidents (hosts, requests, sensors) build on
:class:`IncidentSimulator`: a cheap *plan* stream per day fixes the day's
incidents (kind, start, duration, entity and two kind-specific details), from
which the incident table and the affected rows of a day follow.
:class:`ScheduledSimulator` adds entities that report on a fixed schedule
(one reading every ``report_every`` seconds at their own phase, with jitter)
and an incident kind that silences an entity, whose missing readings are
known from the plans alone, so a day's size stays arithmetic.
"""

from __future__ import annotations

import bisect
import inspect
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from dataclasses import fields as dataclass_fields
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

import numpy as np

from tocsin.batch import EventBatch

if TYPE_CHECKING:
    from tocsin.spec import SimulatorSource

SECONDS_PER_DAY = 86_400.0

FORMATS = ("jsonl", "csv", "parquet")

# Domain tags keep a simulator's random streams independent: its world (fleet, services, sensors),
# each day's incident plan, each day's details, and (requests) each day's event counts.
FLEET_STREAM, PLAN_STREAM, DETAIL_STREAM, COUNT_STREAM = 0, 1, 2, 3


@dataclass(frozen=True)
class FieldInfo:
    """One event field: its name, value type, the EventBatch column it maps to, and meaning."""

    name: str
    type: str
    batch_column: str
    description: str


def parse_start(start: str | float | datetime) -> float:
    """Epoch seconds of an ISO 8601 string (``Z`` allowed), a datetime (naive = UTC) or a number."""
    if isinstance(start, datetime):
        moment = start if start.tzinfo else start.replace(tzinfo=timezone.utc)
        return moment.timestamp()
    if isinstance(start, (int, float)) and not isinstance(start, bool):
        return float(start)
    if isinstance(start, str):
        try:
            moment = datetime.fromisoformat(start.strip().replace("Z", "+00:00"))
        except ValueError:
            raise ValueError(f"start must be an ISO 8601 time such as 2026-01-01T00:00:00Z, got {start!r}") from None
        return parse_start(moment)
    raise ValueError(f"start must be an ISO 8601 string, a datetime or epoch seconds, got {start!r}")


class DailySimulator(ABC):
    """An endless stream of simulated days, resumable at any global position.

    Subclasses set ``self.seed`` and call ``super().__init__()``.
    """

    seed: int

    def __init__(self) -> None:
        self._day_starts = [0]  # cumulative event counts: position of each day's first event

    @classmethod
    def _parameters(cls) -> list[str]:
        return [name for name in inspect.signature(cls.__init__).parameters if name != "self"]

    @classmethod
    def from_spec(cls, source: SimulatorSource) -> Self:
        """The simulator a pipeline spec's ``source: {kind: simulator}`` describes: each constructor
        parameter is the spec field of the same name; a field left null keeps the constructor's default
        (the scenario's own, e.g. ``report_every`` 60 s for hosts and 10 s for sensors)."""
        values = {name: getattr(source, name) for name in cls._parameters()}
        return cls(**{name: value for name, value in values.items() if value is not None})

    def __repr__(self) -> str:
        arguments = ", ".join(f"{name}={getattr(self, name)!r}" for name in self._parameters())
        return f"{type(self).__name__}({arguments})"

    @abstractmethod
    def _day_size(self, index: int) -> int:
        """Number of events of day ``index``, without generating them."""

    @abstractmethod
    def day(self, index: int) -> EventBatch:
        """All events of simulated day ``index``, sorted by time, with their global positions."""

    def _rng(self, stream: int, day: int = 0) -> np.random.Generator:
        return np.random.default_rng(np.random.SeedSequence([self.seed % 2**64, stream, day]))

    def _day_position(self, index: int) -> int:
        """Global position of day ``index``'s first event."""
        while len(self._day_starts) <= index:
            day = len(self._day_starts) - 1
            self._day_starts.append(self._day_starts[-1] + self._day_size(day))
        return self._day_starts[index]

    def _locate(self, position: int) -> tuple[int, int]:
        """(day, offset within the day) of global ``position``."""
        while self._day_starts[-1] <= position:
            self._day_position(len(self._day_starts))
        day = bisect.bisect_right(self._day_starts, position) - 1
        return day, position - self._day_starts[day]

    def batches(self, batch_size: int, start_position: int = 0, max_events: int | None = None) -> Iterator[EventBatch]:
        """The stream from ``start_position`` in batches of ``batch_size`` events (the last may be shorter).

        Endless unless ``max_events`` is given. Only the days holding the
        requested events are generated, so resuming far into the stream is cheap.
        """
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if start_position < 0:
            raise ValueError(f"start_position must be >= 0, got {start_position}")
        if max_events is not None and max_events < 0:
            raise ValueError(f"max_events must be >= 0, got {max_events}")
        remaining = max_events
        day_index, offset = self._locate(start_position)
        pending: list[EventBatch] = []
        pending_events = 0
        while remaining is None or remaining > 0:
            events = self.day(day_index)
            day_index += 1
            end = len(events) if remaining is None else min(len(events), offset + remaining)
            cursor = offset
            offset = 0
            if remaining is not None:
                remaining -= end - cursor
            while cursor < end:
                take = min(batch_size - pending_events, end - cursor)
                pending.append(events.take(slice(cursor, cursor + take)))
                pending_events += take
                cursor += take
                if pending_events == batch_size:
                    yield pending[0] if len(pending) == 1 else EventBatch.concat(pending)
                    pending, pending_events = [], 0
        if pending:
            yield pending[0] if len(pending) == 1 else EventBatch.concat(pending)

    def generate(self, n_events: int) -> EventBatch:
        """The first ``n_events`` events of the stream as one batch."""
        if n_events < 0:
            raise ValueError(f"n_events must be >= 0, got {n_events}")
        if n_events == 0:
            return self.day(0).take(slice(0, 0))
        return next(self.batches(n_events, max_events=n_events))


# --- clocks and ids --------------------------------------------------------------


def weekday(times: np.ndarray) -> np.ndarray:
    """Day of the week (UTC) of epoch seconds ``times``: 0 = Monday … 6 = Sunday."""
    return (np.floor(times / SECONDS_PER_DAY).astype(np.int64) + 3) % 7  # 1970-01-01 was a Thursday


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def business_load(times: np.ndarray, weekend_load: float) -> np.ndarray:
    """A business-hour load at epoch seconds ``times`` (UTC): from ~0 at night to ~1 between 10h and
    17h (a product of two logistic ramps at 8.5h and 18h), times ``weekend_load`` on Saturdays and Sundays."""
    hour = np.mod(times, SECONDS_PER_DAY) / 3600.0
    return sigmoid((hour - 8.5) / 0.75) * sigmoid((18.0 - hour) / 1.0) * np.where(weekday(times) >= 5, weekend_load, 1.0)


def position_ids(prefix: str, positions: np.ndarray) -> np.ndarray:
    """Event ids: ``prefix`` + the zero-padded global position (``hm000000001234``)."""
    return np.array([f"{prefix}{p:012d}" for p in positions.tolist()], dtype=object)


# --- incidents ----------------------------------------------------------------------


@dataclass
class Incidents:
    """Incidents as a plan stream fixes them (absolute times, epoch seconds)."""

    kind: np.ndarray  # index into the simulator's INCIDENT_KINDS
    start: np.ndarray
    end: np.ndarray  # the incident covers [start, end)
    entity: np.ndarray  # index of the entity drawn (its meaning is the simulator's: a host, a service, a sensor)
    level: np.ndarray  # a kind-specific magnitude (a factor, a share, an amount)
    part: np.ndarray  # a kind-specific integer (an endpoint of the service, a field of the sensor)

    def __len__(self) -> int:
        return len(self.kind)

    def take(self, rows: np.ndarray) -> Incidents:
        return Incidents(*(getattr(self, column.name)[rows] for column in dataclass_fields(self)))

    @classmethod
    def concat(cls, parts: list[Incidents]) -> Incidents:
        return cls(*(np.concatenate([getattr(part, column.name) for part in parts]) for column in dataclass_fields(cls)))


@dataclass(frozen=True)
class Hit:
    """An incident touching a day and the rows ``[a, b)`` of one affected entity inside it."""

    kind: int
    start: float
    end: float
    entity: int  # the incident's entity (a host of the rack for a rack-wide one)
    level: float
    part: int
    a: int
    b: int


class IncidentSimulator(DailySimulator):
    """A daily stream with labelled incidents, planned day by day after warm-up.

    A subclass sets ``INCIDENT_KINDS``, ``INCIDENT_SHARE`` (each kind's share of
    incidents) and ``MEMBERS`` (the incident table's key listing the affected
    entities' names); its constructor calls :meth:`_init_incidents` and sets
    ``_entity_names`` (the entities incidents are drawn over, also the names in
    the table). It may override :meth:`_plan_details` (draw ``level`` and
    ``part``), :meth:`_members` (the entities an incident affects) and
    :meth:`_describe` (the table's ``entity``).

    Every subclass's constructor takes, after its own parameters:

    warmup_days:
        Days of clean history from ``start`` before the first incident.
    start:
        Start of day 0: ISO 8601 string, timezone-aware datetime or epoch seconds.
    seed:
        Everything is a function of the parameters; same seed, same events.

    Day ``i``'s plan comes from ``(seed, PLAN_STREAM, i)``: a Poisson number of
    incidents with mean ``incident_rate × entities`` (times the share of the
    day after warm-up), each with a kind drawn by share, a start uniform in
    the day after warm-up (millisecond resolution), a duration uniform within
    its kind's range (whole seconds, under a day, so only a day's and the day
    before's incidents touch it) and an entity uniform over the entities.
    """

    INCIDENT_KINDS: tuple[str, ...]
    INCIDENT_SHARE: tuple[float, ...]
    MEMBERS = "entities"

    incident_rate: float
    warmup_days: float
    start: str | float | datetime
    start_time: float
    _entity_names: np.ndarray

    def _init_incidents(
        self, incident_rate: float, warmup_days: float, start: str | float | datetime, seed: int,
        durations: tuple[tuple[float, float], ...], per: str,
    ) -> None:
        """Check and keep the incident parameters; ``durations`` is each kind's (shortest, longest) in
        seconds, ``per`` names the entity ``incident_rate`` counts per ("host")."""
        if not 0 <= incident_rate <= 10:
            raise ValueError(f"incident_rate must be in [0, 10] incidents per {per} per day, got {incident_rate}")
        if warmup_days < 0:
            raise ValueError(f"warmup_days must be >= 0, got {warmup_days}")
        self.incident_rate = float(incident_rate)
        self.warmup_days = float(warmup_days)
        self.seed = int(seed)
        self.start = start
        self.start_time = parse_start(start)
        self._warmup_end = self.start_time + self.warmup_days * SECONDS_PER_DAY
        self._duration_min_s, self._duration_max_s = (np.array(bound, dtype=float) for bound in zip(*durations))
        assert self._duration_max_s.max() < SECONDS_PER_DAY  # a day depends on its incidents and the day before's only
        self._incident_share = np.array(self.INCIDENT_SHARE)
        self._incident_names = np.array(["", *self.INCIDENT_KINDS], dtype=object)  # code 0 = no incident
        DailySimulator.__init__(self)

    def _plan_details(self, rng: np.random.Generator, kind: np.ndarray, entity: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Each planned incident's ``level`` and ``part``, drawn from the plan stream (none by default)."""
        return np.zeros(len(kind)), np.zeros(len(kind), dtype=np.int64)

    def _members(self, kind: int, entity: int) -> np.ndarray | list[int]:
        """The entities an incident of ``kind`` drawn on ``entity`` affects."""
        return [entity]

    def _describe(self, kind: int, entity: int, part: int) -> str:
        """The incident table's ``entity`` for an incident."""
        return str(self._entity_names[entity])

    def _plan(self, index: int) -> Incidents:
        """Day ``index``'s incidents (those starting that day), from the plan stream alone, sorted by start."""
        day_start = self.start_time + index * SECONDS_PER_DAY
        window_from = max(0.0, self._warmup_end - day_start)
        share = max(0.0, (SECONDS_PER_DAY - window_from) / SECONDS_PER_DAY)
        rng = self._rng(PLAN_STREAM, index)
        entities = len(self._entity_names)
        n = int(rng.poisson(self.incident_rate * entities * share)) if share > 0 else 0
        kind = rng.choice(len(self.INCIDENT_KINDS), size=n, p=self._incident_share)
        start = np.round(day_start + window_from + rng.random(n) * (SECONDS_PER_DAY - window_from), 3)
        start = np.maximum(start, day_start + window_from)
        low, high = self._duration_min_s[kind], self._duration_max_s[kind]
        duration = np.round(low + rng.random(n) * (high - low))
        entity = rng.integers(entities, size=n)
        level, part = self._plan_details(rng, kind, entity)
        order = np.argsort(start, kind="stable")
        return Incidents(kind, start, start + duration, entity, level, part).take(order)

    def _incidents_around(self, index: int) -> Incidents:
        """The incidents that may touch day ``index``: those of the day before and of that day."""
        return Incidents.concat([self._plan(index - 1), self._plan(index)] if index > 0 else [self._plan(index)])

    def _hits(self, index: int, times: np.ndarray, entity_row: np.ndarray, skip: tuple[int, ...] = ()) -> Iterator[Hit]:
        """The incidents touching day ``index`` (but those of the kinds in ``skip``), in plan order, each with
        the rows ``[a, b)`` of every affected entity inside it; entity ``e``'s rows are
        ``[entity_row[e], entity_row[e + 1])``, in time order."""
        around = self._incidents_around(index)
        day_from = self.start_time + index * SECONDS_PER_DAY
        touching = ~np.isin(around.kind, skip) & (around.end > day_from) & (around.start < day_from + SECONDS_PER_DAY)
        for i in np.flatnonzero(touching).tolist():
            kind, start, stop = int(around.kind[i]), float(around.start[i]), float(around.end[i])
            for e in self._members(kind, int(around.entity[i])):
                lo, hi = entity_row[e], entity_row[e + 1]
                a = lo + int(np.searchsorted(times[lo:hi], start, side="left"))
                b = lo + int(np.searchsorted(times[lo:hi], stop, side="left"))
                if a < b:
                    yield Hit(kind, start, stop, int(around.entity[i]), float(around.level[i]), int(around.part[i]), a, b)

    @staticmethod
    def _check_day(index: int) -> int:
        """``index`` as a day index (an int >= 0)."""
        index = int(index)
        if index < 0:
            raise ValueError(f"day index must be >= 0, got {index}")
        return index

    def _labels(self, code: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """``labels`` and ``extra`` of events with incident codes ``code`` (kind + 1, 0 = none)."""
        return (code > 0).astype(np.int8), {"incident": self._incident_names[code]}

    def incidents(self, until_time: str | float | datetime) -> list[dict[str, Any]]:
        """Every incident starting before ``until_time`` (epoch seconds, ISO 8601 or datetime), by start.

        Each is ``{"kind", "entity", MEMBERS, "start", "end"}`` (``MEMBERS`` is
        "hosts" for the host simulator, else "entities"): ``entity`` names what
        the incident is about, ``MEMBERS`` the names (event keys) of the
        affected entities, ``start``/``end`` are epoch seconds (the incident
        covers ``[start, end)``). Computed from the plans alone, no event is generated.
        """
        until = parse_start(until_time)
        last_day = int(np.floor((until - self.start_time) / SECONDS_PER_DAY))
        table: list[dict[str, Any]] = []
        for index in range(max(0, last_day + 1)):
            plan = self._plan(index)
            for kind, start, end, entity, part in zip(
                    plan.kind.tolist(), plan.start.tolist(), plan.end.tolist(), plan.entity.tolist(), plan.part.tolist()):
                if start >= until:
                    continue
                table.append({"kind": self.INCIDENT_KINDS[kind], "entity": self._describe(kind, entity, part),
                              self.MEMBERS: self._entity_names[self._members(kind, entity)].tolist(), "start": start, "end": end})
        return table


@dataclass
class Schedule:
    """A day's due readings, grouped by entity in time order: entity ``e`` reports its slots
    ``[first[e], end[e])``, at rows ``[row[e], row[e + 1])``."""

    first: np.ndarray
    end: np.ndarray
    row: np.ndarray
    entity: np.ndarray  # per reading
    times: np.ndarray  # per reading, epoch seconds (millisecond resolution)


class ScheduledSimulator(IncidentSimulator):
    """Entities reporting one reading every ``report_every`` seconds, some silenced by incidents.

    Entity ``e`` reports at ``start + phase_e + k * report_every`` plus a jitter
    uniform within ± min(2 s, report_every / 10), rounded to milliseconds and
    kept inside its day. An incident of kind ``SILENCE`` drops every reading of
    its entity due within ``[start - g, end + g)`` (``g`` = jitter + 1 s), so
    none has a time in ``[start, end]``. A subclass calls
    :meth:`_init_schedule`, sets ``_phase`` (per entity, in ``[0, report_every)``)
    and says what a day's readings hold: :meth:`_normal` (healthy values),
    :meth:`_inject` (one incident on one entity's rows) and :meth:`_event_batch`.
    """

    SILENCE: int
    report_every: float
    _phase: np.ndarray

    def _init_schedule(self, report_every: float) -> None:
        if not 0 < report_every <= SECONDS_PER_DAY:
            raise ValueError(f"report_every must be in (0, 86400] seconds, got {report_every}")
        self.report_every = float(report_every)
        self._jitter = min(2.0, 0.1 * self.report_every)
        self._silence_guard = self._jitter + 1.0

    def _first_slot(self, seconds: float | np.ndarray, entities: np.ndarray | slice | int = slice(None)) -> np.ndarray:
        """Per entity, the first report index ``k`` with ``phase + k * report_every >= seconds`` (since start)."""
        slots = np.ceil((seconds - self._phase[entities]) / self.report_every)
        return np.maximum(slots, 0.0).astype(np.int64)

    def _day_slots(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Per entity, the report indices ``[first, end)`` that fall in day ``index``."""
        return self._first_slot(index * SECONDS_PER_DAY), self._first_slot((index + 1) * SECONDS_PER_DAY)

    def _silenced(self, index: int, first: np.ndarray, end: np.ndarray) -> list[tuple[int, int, int]]:
        """(entity, from slot, to slot) ranges of day ``index``'s readings that silencing incidents drop,
        disjoint and clipped to the day."""
        around = self._incidents_around(index)
        silent = around.take(np.flatnonzero(around.kind == self.SILENCE))
        ranges: list[tuple[int, int, int]] = []
        for entity, start, stop in zip(silent.entity.tolist(), silent.start.tolist(), silent.end.tolist()):
            lo = int(self._first_slot(start - self.start_time - self._silence_guard, entity))
            hi = int(self._first_slot(stop - self.start_time + self._silence_guard, entity))
            lo, hi = max(lo, int(first[entity])), min(hi, int(end[entity]))
            if lo < hi:
                ranges.append((entity, lo, hi))
        merged: list[tuple[int, int, int]] = []
        for entity, lo, hi in sorted(ranges):
            if merged and merged[-1][0] == entity and lo <= merged[-1][2]:
                merged[-1] = (entity, merged[-1][1], max(merged[-1][2], hi))
            else:
                merged.append((entity, lo, hi))
        return merged

    def _day_size(self, index: int) -> int:
        first, end = self._day_slots(index)
        silenced = sum(hi - lo for _, lo, hi in self._silenced(index, first, end))
        return int((end - first).sum()) - silenced

    def _schedule(self, rng: np.random.Generator, index: int) -> Schedule:
        """Every reading due in day ``index`` (silenced ones included), the jitter drawn from ``rng``."""
        day_start = index * SECONDS_PER_DAY
        first, end = self._day_slots(index)
        counts = end - first
        row = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        entity = np.repeat(np.arange(len(counts)), counts)
        n = len(entity)
        slot = np.arange(n, dtype=np.int64) - row[entity] + first[entity]
        offset = self._phase[entity] + slot * self.report_every + rng.uniform(-self._jitter, self._jitter, size=n)
        offset = np.clip(offset, day_start, day_start + SECONDS_PER_DAY - 0.001)
        return Schedule(first, end, row, entity, np.round(self.start_time + offset, 3))

    @abstractmethod
    def _normal(self, rng: np.random.Generator, entity: np.ndarray, times: np.ndarray) -> dict[str, np.ndarray]:
        """The readings' values, by field, as healthy entities report them at ``times``."""

    @abstractmethod
    def _inject(self, rng: np.random.Generator, hit: Hit, times: np.ndarray, values: dict[str, np.ndarray]) -> None:
        """Apply one incident to one entity's rows ``[hit.a, hit.b)`` of ``values`` in place."""

    @abstractmethod
    def _event_batch(self, entity: np.ndarray, times: np.ndarray, values: dict[str, np.ndarray], positions: np.ndarray,
                     code: np.ndarray) -> EventBatch:
        """The emitted readings as an EventBatch (``code``: incident kind + 1 per reading, 0 = none)."""

    def day(self, index: int) -> EventBatch:
        """All readings of simulated day ``index`` (0 = the day starting at ``start``), sorted by time."""
        index = self._check_day(index)
        rng = self._rng(DETAIL_STREAM, index)
        schedule = self._schedule(rng, index)
        values = self._normal(rng, schedule.entity, schedule.times)
        code = np.zeros(len(schedule.entity), dtype=np.int64)
        for hit in self._hits(index, schedule.times, schedule.row, skip=(self.SILENCE,)):
            self._inject(rng, hit, schedule.times, values)
            code[hit.a:hit.b] = hit.kind + 1
        rows, positions = self._emitted(index, schedule)
        return self._event_batch(schedule.entity[rows], schedule.times[rows], {name: value[rows] for name, value in values.items()},
                                 positions, code[rows])

    def _emitted(self, index: int, schedule: Schedule) -> tuple[np.ndarray, np.ndarray]:
        """The rows of ``schedule`` that are sent (silenced ones dropped), in time order, and their global positions."""
        keep = np.ones(len(schedule.entity), dtype=bool)
        for e, lo, hi in self._silenced(index, schedule.first, schedule.end):
            keep[schedule.row[e] + lo - schedule.first[e] : schedule.row[e] + hi - schedule.first[e]] = False
        rows = np.flatnonzero(keep)
        rows = rows[np.argsort(schedule.times[rows], kind="stable")]
        first_position = self._day_position(index)
        return rows, np.arange(first_position, first_position + len(rows), dtype=np.int64)


def field_columns(batch: EventBatch, fields: tuple[FieldInfo, ...]) -> dict[str, np.ndarray]:
    """The batch's columns named and ordered as ``fields`` (each found by its ``batch_column``, such as
    ``numeric['amount']``); missing labels read as 0, a missing ``extra`` column as '' and "int" fields as int64."""
    columns = {}
    for field in fields:
        group, _, name = field.batch_column.partition("[")
        if group == "labels":
            labels = batch.labels if batch.labels is not None else np.zeros(len(batch), dtype=np.int8)
            columns[field.name] = labels.astype(np.int8)
        elif name:
            default = np.full(len(batch), "", dtype=object) if group == "extra" else None
            columns[field.name] = getattr(batch, group).get(name.strip("[]'\""), default)
        else:
            columns[field.name] = getattr(batch, group)
        if field.type == "int":
            columns[field.name] = columns[field.name].astype(np.int64)
        elif field.type == "bool":  # JSON true/false, Arrow booleans (login events carry "success": true)
            columns[field.name] = columns[field.name].astype(bool)
    return columns


def write_fields(batch: EventBatch, fields: tuple[FieldInfo, ...], path: str | Path, format: str | None = None) -> None:
    """Write a simulator batch with one record per event and every field of ``fields``, in their order.

    ``format`` is "jsonl" (via msgspec), "csv" or "parquet" (via pyarrow); when
    omitted it is taken from the file suffix. "int" fields are written as
    integers (JSON numbers without a fraction) and "bool" fields as true/false; in CSV and Parquet, "float"
    fields are float64, "int" int64, "int8" int8, "bool" boolean and the rest strings.
    """
    path = Path(path)
    if format is None:
        format = path.suffix.lstrip(".").lower()
    if format not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}, got {format!r}")
    columns = field_columns(batch, fields)
    if format == "jsonl":
        import msgspec

        names = list(columns)
        rows = zip(*(column.tolist() for column in columns.values()))
        records = [dict(zip(names, row)) for row in rows]
        path.write_bytes(msgspec.json.Encoder().encode_lines(records))
        return
    import pyarrow as pa

    arrow_types: dict[str, Any] = {"float": pa.float64(), "int": pa.int64(), "int8": pa.int8(), "bool": pa.bool_()}
    table = pa.table({field.name: pa.array(columns[field.name], type=arrow_types.get(field.type, pa.string()))
                      for field in fields})
    if format == "csv":
        import pyarrow.csv

        pyarrow.csv.write_csv(table, path)
    else:
        import pyarrow.parquet

        pyarrow.parquet.write_table(table, path)
