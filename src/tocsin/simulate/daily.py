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
"""

from __future__ import annotations

import bisect
import inspect
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

import numpy as np

from tocsin.batch import EventBatch

if TYPE_CHECKING:
    from tocsin.spec import SimulatorSource

SECONDS_PER_DAY = 86_400.0

FORMATS = ("jsonl", "csv", "parquet")


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
        parameter is the spec field of the same name."""
        return cls(**{name: getattr(source, name) for name in cls._parameters()})

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


def field_columns(batch: EventBatch, fields: tuple[FieldInfo, ...]) -> dict[str, np.ndarray]:
    """The batch's columns named and ordered as ``fields`` (each found by its ``batch_column``, such as
    ``numeric['amount']``); missing labels read as 0 and a missing ``extra`` column as ''."""
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
    return columns


def write_fields(batch: EventBatch, fields: tuple[FieldInfo, ...], path: str | Path, format: str | None = None) -> None:
    """Write a simulator batch with one record per event and every field of ``fields``, in their order.

    ``format`` is "jsonl" (via msgspec), "csv" or "parquet" (via pyarrow); when
    omitted it is taken from the file suffix. In CSV and Parquet, "float"
    fields are float64, "int8" fields int8 and the rest strings.
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

    arrow_types: dict[str, Any] = {"float": pa.float64(), "int8": pa.int8()}
    table = pa.table({field.name: pa.array(columns[field.name], type=arrow_types.get(field.type, pa.string()))
                      for field in fields})
    if format == "csv":
        import pyarrow.csv

        pyarrow.csv.write_csv(table, path)
    else:
        import pyarrow.parquet

        pyarrow.parquet.write_table(table, path)
