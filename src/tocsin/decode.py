"""Decoding and validation: raw records in, one columnar batch and dead letters out.

Three inputs share one set of rules: JSON lines (bytes), Python dicts (the HTTP
API) and Arrow tables (CSV/Parquet replay). A record that cannot be trusted
becomes a :class:`DeadLetter` carrying the raw bytes, the reason, a code from
:data:`DEAD_LETTER_CODES` and its source position; the rest of the batch goes on.
Such a record is:

- not JSON or not an object, over ``max_event_bytes``, or (HTTP) not JSON-serialisable;
- without (or null in) its id, key, time or a declared field (but an ``optional`` one, which then takes its default);
- of a wrong type: text for a number, a float category, a boolean id, key or time;
- NaN, infinite or beyond float range; an empty id or key; an unreadable time.

Booleans are values, not wrong types (login events carry ``"success": true``):
1.0/0.0 in a numeric field, the category "true"/"false" in a categorical one.
Without a ``schema.id_field`` an event's id is ``"<source>:<position>"``: a
replay of the same input gets the same ids, which the store absorbs.

JSON is decoded by msgspec into a Struct type generated from the spec, the
whole batch in one call (``decode_lines``: one value per line); only when that fails is it decoded line by line to find
the bad records, so the common case pays no per-record call overhead. A batch is first tried with a strict
struct (text only text, numbers only numbers), which needs no per-value type check after; a batch holding an
integer id or a boolean category is decoded again with the lenient one (~10% faster decoding when producers
send plain values, which nearly all do).
"""

from __future__ import annotations

import datetime as dt
import math
import re
from dataclasses import dataclass
from operator import attrgetter
from typing import Annotated, Any

import msgspec
import numpy as np

from tocsin.batch import EventBatch
from tocsin.flat_json import LABEL, MEASURE, NUMBER, TEXT, TEXT_NOT_EMPTY, FlatScanner
from tocsin.spec import SchemaSpec

RAW_FIELD = "_raw"
"""Name of the ``EventBatch.extra`` column holding each record's raw bytes (for the store and dead letters)."""

#: why a record became a dead letter, as a short stable code (a bounded metrics label)
DEAD_LETTER_CODES: tuple[str, ...] = (
    "malformed",  # not JSON, or not one JSON object (truncated, trailing data, an array, a bare value)
    "not_serialisable",  # a Python dict (HTTP) that cannot be encoded as JSON
    "oversize",  # over schema.max_event_bytes
    "missing_field",  # the id, key, time or a declared field is absent or null (or its column is)
    "wrong_type",  # a value of another type, e.g. text for a number, a boolean for the key
    "not_finite",  # a number (an epoch time too) that is NaN, infinite or beyond float range
    "empty_value",  # an empty id or key
    "bad_time",  # an ISO-8601 event time that does not parse
    "out_of_range",  # a numeric field beyond ±schema.max_abs_value (1e308 once turned an entity's state to NaN)
    "out_of_window",  # an event time implausible or far from the stream's event-time clock (engine/admission.py)
    "duplicate",  # an event id already processed (engine/admission.py)
    "late",  # an event for a time bucket that already closed (engine/aggregate.py)
)


@dataclass(frozen=True)
class DeadLetter:
    """A record that was not processed, with why and where it came from.

    ``reason`` is for people; ``code`` (one of :data:`DEAD_LETTER_CODES`) is for
    counting. The store has no column for the code, so :meth:`as_row` leaves it out.
    """

    source: str
    position: int
    reason: str
    raw: bytes
    code: str

    def __post_init__(self) -> None:
        if self.code not in DEAD_LETTER_CODES:
            raise ValueError(f"dead-letter code {self.code!r} is not one of {DEAD_LETTER_CODES}")

    def as_row(self) -> dict[str, Any]:
        return {"source": self.source, "position": self.position, "reason": self.reason, "raw": self.raw}


_Scalar = str | int  # ids and keys
_Number = float | int  # times
_Measure = float | int | bool  # numeric fields: a boolean counts as 1.0/0.0
_Category = str | int | bool  # categorical fields: a boolean is the category "true"/"false"


def _event_struct(schema: SchemaSpec, strict: bool = False) -> type:
    """The Struct records decode into. ``strict``: text fields only text, numbers only numbers (an integer
    is one), the label only an integer, ids and keys not empty, measures within ``max_abs_value``: what
    nearly every producer sends, decoded with no checks after; a batch it rejects is decoded again with
    the lenient struct (integer ids, boolean categories and measures), whose values the columns step
    converts and checks."""
    if strict:  # the columns step's checks, made by msgspec while it decodes: a batch failing one goes the lenient way
        limit = schema.max_abs_value
        scalar, number, category = Annotated[str, msgspec.Meta(min_length=1)], float, str
        measure: Any = Annotated[float, msgspec.Meta(ge=-limit, le=limit)]
    else:
        scalar, number, measure, category = _Scalar, _Number, _Measure, _Category
    time_type: Any = str if schema.time_format == "iso8601" else number
    fields: list[tuple[str, Any] | tuple[str, Any, Any]] = [(schema.id_field, scalar)] if schema.id_field is not None else []
    fields += [(schema.key_field, scalar), (schema.time_field, time_type)]
    optional = schema.optional
    # an optional field may be absent or null (None here; its default is filled in by the columns step)
    fields += [(name, measure | None, None) if name in optional else (name, measure) for name in schema.numeric]
    fields += [(name, category | None, None) if name in optional else (name, category)
               for name in schema.categorical if name != schema.key_field]  # the key is read once
    if schema.label_field:
        fields.append((schema.label_field, int, 0) if strict else (schema.label_field, int | float | bool | None, None))
    # Struct field names must be identifiers; rename and map back with `rename`.
    safe = {name: f"f{i}" for i, (name, *_rest) in enumerate(fields)}
    renamed = [(safe[f[0]], *f[1:]) for f in fields]
    struct = msgspec.defstruct(
        "Event", renamed, rename={v: k for k, v in safe.items()}, forbid_unknown_fields=False, gc=False
    )
    struct.__tocsin_names__ = safe  # type: ignore[attr-defined]
    return struct


def _parse_iso(value: str) -> float:
    stamp = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=dt.timezone.utc)
    return stamp.timestamp()


class Decoder:
    """Turns raw records into an :class:`EventBatch` plus dead letters, per the schema.

    >>> from tocsin.spec import SchemaSpec
    >>> decoder = Decoder(SchemaSpec(key_field="card", numeric=["amount"]), source="demo")
    >>> batch, dead = decoder.decode_lines([
    ...     b'{"id": "a", "card": "c1", "ts": 1.5, "amount": 12.5}',
    ...     b'{"id": "b", "card": "c1", "ts": 2.0}',
    ... ])
    >>> batch.numeric["amount"].tolist(), [(d.code, d.reason) for d in dead]
    ([12.5], [('missing_field', 'Object missing required field `amount`')])
    """

    def __init__(self, schema: SchemaSpec, source: str = "input") -> None:
        self.schema = schema
        self.source = source
        self._struct = _event_struct(schema)
        self._names: dict[str, str] = self._struct.__tocsin_names__  # type: ignore[attr-defined]
        self._one_decoder = msgspec.json.Decoder(self._struct)
        self._strict_decoder = msgspec.json.Decoder(_event_struct(schema, strict=True))
        self._time_scale = 0.001 if schema.time_format == "epoch_ms" else 1.0
        self._scanner = _scanner(schema)

    # --- inputs -------------------------------------------------------------

    def scan_lines(self, lines: list[bytes]) -> tuple | None:
        """The compiled scanner's part of :meth:`decode_lines` (no GIL held but for a few allocations), for
        another thread to run ahead: pass what it returns to :meth:`decode_lines` as ``scanned``. None: the
        scanner does not apply, or did not take these lines."""
        return self._scanner.scan(lines) if self._scanner is not None and lines else None

    def decode_lines(
        self, lines: list[bytes], positions: np.ndarray | None = None, scanned: tuple | None | bool = False
    ) -> tuple[EventBatch, list[DeadLetter]]:
        """JSON objects, one per element of ``lines`` (bytes, no trailing newline needed). ``scanned``: what
        :meth:`scan_lines` returned for these lines (False: not run yet, so run it now)."""
        positions = _positions(positions, len(lines))
        if scanned is False:  # the compiled scanner, for the plain flat objects nearly everyone sends
            scanned = self.scan_lines(lines)
        if scanned is not None:
            return self._scanned(self._scanner.columns(scanned), lines, positions), []
        dead: list[DeadLetter] = []
        limit = self.schema.max_event_bytes
        if lines and max(map(len, lines)) > limit:
            keep = []
            for i, line in enumerate(lines):
                if len(line) > limit:
                    dead.append(self._dead(positions[i], "oversize", f"record is {len(line)} bytes, over the {limit}-byte limit", line))
                else:
                    keep.append(i)
            lines = [lines[i] for i in keep]
            positions = positions[keep]
        joined = b"\n".join(lines)
        strict = True
        try:
            # one value per line: a line holding two objects, or half of one, must fail, whatever the batch cut
            try:
                records = self._strict_decoder.decode_lines(joined) if lines else []
            except msgspec.ValidationError:  # a value of another type somewhere: the lenient struct converts or rejects it
                strict = False
                records = self._one_decoder.decode_lines(joined)
            if len(records) != len(lines):  # an empty line, or one with a newline of its own (pretty JSON): line by line
                raise msgspec.DecodeError("record count mismatch")
        except (msgspec.DecodeError, msgspec.ValidationError):
            strict = False
            records, good = [], []
            for i, line in enumerate(lines):
                try:
                    records.append(self._one_decoder.decode(line))
                    good.append(i)
                except (msgspec.DecodeError, msgspec.ValidationError) as error:
                    dead.append(self._dead(positions[i], *_rejection(error), line))
            lines = [lines[i] for i in good]
            positions = positions[good]
        batch, more_dead = self._columns(records, lines, positions, strict)
        return batch, _in_position_order(dead + more_dead)

    def decode_records(
        self, records: list[dict[str, Any]], positions: np.ndarray | None = None
    ) -> tuple[EventBatch, list[DeadLetter]]:
        """Python dicts (already parsed JSON, e.g. an HTTP request body)."""
        positions = _positions(positions, len(records))
        encode = msgspec.json.encode
        lines = []
        dead: list[DeadLetter] = []
        keep = []
        for i, record in enumerate(records):
            try:
                lines.append(encode(record))
                keep.append(i)
            except (TypeError, ValueError, OverflowError) as error:
                dead.append(self._dead(positions[i], "not_serialisable", f"record is not JSON-serialisable: {error}", repr(record).encode()))
        # NaN/inf serialise as null in msgspec: check them on the dicts so the reason is exact.
        for j, i in enumerate(keep):
            record = records[i]
            for name in self.schema.numeric:
                value = record.get(name)
                if isinstance(value, float) and not math.isfinite(value):
                    lines[j] = b""
                    dead.append(self._dead(positions[i], "not_finite", f"field `{name}` is {value}, expected a finite number", repr(record).encode()))
                    break
        good = [j for j, line in enumerate(lines) if line]
        batch, more_dead = self.decode_lines([lines[j] for j in good], positions[[keep[j] for j in good]])
        return batch, _in_position_order(dead + more_dead)

    def decode_table(self, table: Any, positions: np.ndarray | None = None) -> tuple[EventBatch, list[DeadLetter]]:
        """A pyarrow Table (CSV/Parquet replay), validated with vectorised checks."""
        import pyarrow as pa
        import pyarrow.compute as pc

        n = table.num_rows
        positions = _positions(positions, n)
        names = set(table.column_names)  # built anew on every access (~10 µs): once per batch
        bad = np.zeros(n, dtype=bool)
        codes = np.empty(n, dtype=object)
        reasons = np.empty(n, dtype=object)

        def flag(mask: np.ndarray, code: str, reason: str) -> None:
            new = mask & ~bad
            if new.any():  # the common case is a clean column: skip the object-array writes
                codes[new] = code
                reasons[new] = reason
                bad[:] |= new

        def column(name: str) -> Any:
            if name not in names:
                flag(np.ones(n, dtype=bool), "missing_field", f"missing required field `{name}` (no such column)")
                return None
            return table.column(name)

        def not_boolean(name: str, expected: str) -> None:
            """The id, key and time take no booleans: the same wrong type as in JSON."""
            if name in names and pa.types.is_boolean(table.column(name).type):
                flag(~np.asarray(table.column(name).is_null(), dtype=bool), "wrong_type", f"field `{name}`: expected {expected}, got `bool`")

        def column_or_default(name: str) -> Any:
            """An optional field's column with its nulls (or the whole column, if absent) as its default."""
            default = schema.optional[name]
            if name not in names:
                return pa.array([default] * n)
            col = table.column(name)
            if isinstance(default, str) and not pa.types.is_string(col.type):
                col = pc.cast(col, pa.string())
            return pc.fill_null(col, default)

        def as_text(name: str) -> np.ndarray:
            col = column_or_default(name) if name in schema.optional else column(name)
            if col is None:
                return np.full(n, "", dtype=object)
            flag(np.asarray(col.is_null(), dtype=bool), "missing_field", f"missing required field `{name}`")
            text = pc.cast(col, pa.string()) if not pa.types.is_string(col.type) else col
            values = np.asarray(text.to_numpy(zero_copy_only=False), dtype=object)
            return values

        def as_float(name: str) -> np.ndarray:
            col = column_or_default(name) if name in schema.optional else column(name)
            if col is None:
                return np.zeros(n)
            flag(np.asarray(col.is_null(), dtype=bool), "missing_field", f"missing required field `{name}`")
            if pa.types.is_timestamp(col.type):
                values = pc.cast(col, pa.timestamp("us")).cast(pa.int64()).to_numpy(zero_copy_only=False) / 1e6
                return np.nan_to_num(np.asarray(values, dtype=np.float64), nan=0.0)
            try:
                values = np.asarray(pc.cast(col, pa.float64(), safe=False).to_numpy(zero_copy_only=False), dtype=np.float64)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                values = np.array([_to_float(v) for v in col.to_pylist()], dtype=np.float64)
                flag(np.isnan(values) & ~np.asarray(col.is_null(), dtype=bool), "wrong_type", f"field `{name}` is not a number")
            flag(~np.isfinite(values) & ~bad, "not_finite", f"field `{name}` is NaN or infinite, expected a finite number")
            if name in self.schema.numeric:
                flag(~(np.abs(values) <= self.schema.max_abs_value) & ~bad, "out_of_range",
                     f"field `{name}` is beyond ±{self.schema.max_abs_value:g} (schema.max_abs_value)")
            return values

        schema = self.schema
        for name, expected in ((schema.id_field, "`int | str`"), (schema.key_field, "`int | str`"),
                               (schema.time_field, "`str`" if schema.time_format == "iso8601" else "a number")):
            if name is not None:
                not_boolean(name, expected)
        ids = as_text(schema.id_field) if schema.id_field is not None else self._derived_ids(positions)
        keys = as_text(schema.key_field)
        if schema.time_format == "iso8601" and schema.time_field in names and not pa.types.is_timestamp(table.column(schema.time_field).type):
            raw_times = table.column(schema.time_field).to_pylist()
            times = np.array([_iso_or_nan(v) for v in raw_times], dtype=np.float64)
            flag(~np.isfinite(times), "bad_time", f"field `{schema.time_field}` is not an ISO-8601 time")
        else:
            times = as_float(schema.time_field) * (1.0 if column_is_timestamp(table, schema.time_field) else self._time_scale)
        numeric = {name: as_float(name) for name in schema.numeric}
        categorical = {name: keys if name == schema.key_field else as_text(name) for name in schema.categorical}
        labels = None
        if schema.label_field and schema.label_field in names:
            labels = np.nan_to_num(
                np.asarray(pc.cast(table.column(schema.label_field), pa.float64(), safe=False).to_numpy(zero_copy_only=False), dtype=np.float64)
            ).astype(np.int8)
        flag(np.array([not k for k in keys], dtype=bool), "empty_value", f"field `{schema.key_field}` is empty")
        if schema.id_field is not None:
            flag(np.array([not k for k in ids], dtype=bool), "empty_value", f"field `{schema.id_field}` is empty")

        dead = []
        bad_rows = np.flatnonzero(bad)
        if len(bad_rows):
            rows = table.take(pa.array(bad_rows)).to_pylist()
            for row_index, row in zip(bad_rows, rows):
                dead.append(self._dead(positions[row_index], codes[row_index], reasons[row_index], msgspec.json.encode(row, enc_hook=str)))
        good = ~bad
        batch = EventBatch(
            ids=ids[good],
            keys=keys[good],
            times=times[good],
            numeric={k: v[good] for k, v in numeric.items()},
            categorical={k: v[good] for k, v in categorical.items()},
            positions=positions[good],
            labels=None if labels is None else labels[good],
        )
        return batch, dead

    # --- internals ----------------------------------------------------------

    def _columns(
        self, records: list[Any], lines: list[bytes], positions: np.ndarray, strict: bool = False
    ) -> tuple[EventBatch, list[DeadLetter]]:
        """``records`` (decoded Structs) as columns; ``strict``: decoded by the strict struct, so every text
        field holds text and the label an integer (no per-value type checks)."""
        schema, names, n = self.schema, self._names, len(records)

        def values(field: str) -> Any:
            got = map(attrgetter(names[field]), records)
            if field in schema.optional:  # absent or null: the declared default
                default = schema.optional[field]
                got = [default if v is None else v for v in got]
            return got

        def text(field: str) -> np.ndarray:
            if strict and field not in schema.optional:  # every value is a str
                return np.fromiter(values(field), dtype=object, count=n)
            raw = list(values(field))
            out = np.empty(n, dtype=object)
            if n and not strict and set(map(type, raw)) != {str}:  # ids and categories may arrive as integers, categories as booleans
                raw = [v if type(v) is str else _BOOL_TEXT[v] if type(v) is bool else str(v) for v in raw]
            out[:] = raw
            return out

        def floats(field: str) -> np.ndarray:
            if strict:  # floats within range: no overflow to handle
                return np.fromiter(values(field), dtype=np.float64, count=n)
            return _floats(list(values(field)))

        ids = text(schema.id_field) if schema.id_field is not None else self._derived_ids(positions)
        keys = text(schema.key_field)
        if schema.time_format == "iso8601":
            times = np.array([_iso_or_nan(v) for v in values(schema.time_field)], dtype=np.float64)
        else:
            times = floats(schema.time_field) * self._time_scale
        numeric = {name: floats(name) for name in schema.numeric}
        categorical = {name: keys if name == schema.key_field else text(name) for name in schema.categorical}
        labels = None
        if schema.label_field:
            labels = (np.fromiter(values(schema.label_field), dtype=np.int64, count=n) != 0).astype(np.int8) if strict \
                else np.array([1 if v else 0 for v in values(schema.label_field)], dtype=np.int8)

        bad = np.zeros(n, dtype=bool)
        reasons: dict[int, tuple[str, str]] = {}

        def flag(mask: np.ndarray, code: str, reason: str) -> None:
            for i in np.flatnonzero(mask & ~bad):
                reasons[int(i)] = (code, reason)
            bad[:] |= mask

        # the strict struct checked ids, keys, epoch times and required measures as it decoded them
        if not strict or schema.time_format == "iso8601":
            flag(~np.isfinite(times), "bad_time" if schema.time_format == "iso8601" else "not_finite", f"field `{schema.time_field}` is not a valid time")
        limit = schema.max_abs_value
        for name, column in numeric.items():
            if strict and name not in schema.optional:
                continue
            within = np.abs(column) <= limit  # False for NaN too
            if not within.all():
                finite = np.isfinite(column)
                flag(~finite, "not_finite", f"field `{name}` is NaN or infinite, expected a finite number")
                flag(~within, "out_of_range", f"field `{name}` is beyond ±{limit:g} (schema.max_abs_value)")
        if not strict:
            flag(keys == "", "empty_value", f"field `{schema.key_field}` is empty")
            if schema.id_field is not None:
                flag(ids == "", "empty_value", f"field `{schema.id_field}` is empty")

        raw = np.empty(n, dtype=object)
        raw[:] = lines
        dead = [self._dead(positions[i], *reason, lines[i]) for i, reason in reasons.items()]
        batch = EventBatch(
            ids=ids, keys=keys, times=times, numeric=numeric, categorical=categorical,
            positions=positions, labels=labels, extra={RAW_FIELD: raw},
        )
        if bad.any():
            batch = batch.take(~bad)
        return batch, dead

    def _scanned(self, columns: tuple[dict, dict, np.ndarray], lines: list[bytes], positions: np.ndarray) -> EventBatch:
        """The batch from the scanner's columns: what :meth:`_columns` makes of the strict struct's records, bit for
        bit, with each text column's encoding kept for the key interning."""
        schema, n = self.schema, len(lines)
        text, numbers, labels = columns
        encodings: dict[int, tuple[np.ndarray, tuple]] = {}

        def strings(name: str) -> np.ndarray:
            column = np.fromiter(text[name][0], dtype=object, count=n)
            encodings[id(column)] = (column, text[name])
            return column

        ids = strings(schema.id_field) if schema.id_field is not None else self._derived_ids(positions)
        keys = strings(schema.key_field)
        times = numbers[schema.time_field] * self._time_scale
        raw = np.empty(n, dtype=object)
        raw[:] = lines
        return EventBatch(
            ids=ids, keys=keys, times=times, numeric={name: numbers[name] for name in schema.numeric},
            categorical={name: keys if name == schema.key_field else strings(name) for name in schema.categorical},
            positions=positions, labels=(labels != 0).astype(np.int8) if schema.label_field else None,
            extra={RAW_FIELD: raw}, encodings=encodings,
        )

    def _derived_ids(self, positions: np.ndarray) -> np.ndarray:
        """Ids for a schema without an id field: ``"<source>:<position>"``, the same on every replay."""
        ids = np.empty(len(positions), dtype=object)
        ids[:] = [f"{self.source}:{p}" for p in positions.tolist()]
        return ids

    def _dead(self, position: int, code: str, reason: str, raw: bytes) -> DeadLetter:
        """A dead letter keeping at most ``schema.max_event_bytes`` of the raw record (an 8 MB body once
        went whole into the store: the start of an oversize record says enough about it)."""
        raw = bytes(raw)
        if len(raw) > self.schema.max_event_bytes:
            raw = raw[: self.schema.max_event_bytes]
        return DeadLetter(source=self.source, position=int(position), reason=reason, raw=raw, code=code)


def _scanner(schema: SchemaSpec) -> FlatScanner | None:
    """The compiled scanner for this schema's strict struct, or None where it does not apply (ISO times, optional
    fields: the msgspec path handles them)."""
    if schema.time_format == "iso8601" or schema.optional:
        return None
    fields = [(schema.id_field, TEXT_NOT_EMPTY)] if schema.id_field is not None else []
    fields += [(schema.key_field, TEXT_NOT_EMPTY), (schema.time_field, NUMBER)]
    fields += [(name, MEASURE) for name in schema.numeric]
    fields += [(name, TEXT) for name in schema.categorical if name != schema.key_field]
    if schema.label_field:
        fields.append((schema.label_field, LABEL))
    if len({name for name, _ in fields}) != len(fields) or len(fields) > 62:
        return None
    return FlatScanner(fields, limit=schema.max_abs_value, max_line=schema.max_event_bytes)


def column_is_timestamp(table: Any, name: str) -> bool:
    import pyarrow as pa

    return name in table.column_names and pa.types.is_timestamp(table.column(name).type)


def _positions(positions: np.ndarray | None, n: int) -> np.ndarray:
    if positions is None:
        return np.arange(n, dtype=np.int64)
    positions = np.asarray(positions, dtype=np.int64)
    if len(positions) != n:
        raise ValueError(f"{len(positions)} positions for {n} records")
    return positions


_AT_FIELD = re.compile(r"^(?P<message>.*) - at `\$\.(?P<field>[^`]+)`$")


def _rejection(error: Exception) -> tuple[str, str]:
    """The code and reason of a record msgspec rejected."""
    message = str(error)
    if not isinstance(error, msgspec.ValidationError):  # a DecodeError: not JSON at all
        code = "malformed"
    elif message.startswith("Object missing required field") or ", got `null`" in message:
        code = "missing_field"
    elif message.startswith("Number out of range"):
        code = "not_finite"
    elif " - at `$." not in message:  # rejected as a whole: an array or a bare value, not an object
        code = "malformed"
    else:
        code = "wrong_type"
    return code, _reason(message)


def _reason(message: str) -> str:
    """msgspec's message, reworded to name the field first: "field `amount`: expected a number, got `str`"."""
    text = message.removesuffix(" - at `$`").replace("`bool | int | float`", "a number").replace("`int | float`", "a number")
    text = text.replace("`str | int`", "text or an integer")
    match = _AT_FIELD.match(text)
    if match:
        return f"field `{match['field']}`: {match['message'][0].lower()}{match['message'][1:]}"
    return text


def _in_position_order(dead: list[DeadLetter]) -> list[DeadLetter]:
    return sorted(dead, key=lambda d: d.position)


def _iso_or_nan(value: Any) -> float:
    try:
        return _parse_iso(value) if isinstance(value, str) else float("nan")
    except ValueError:
        return float("nan")


_BOOL_TEXT = {True: "true", False: "false"}


def _floats(values: list[Any]) -> np.ndarray:
    """Numbers (and booleans) as float64; an integer beyond float range becomes inf, flagged as not finite."""
    try:
        return np.fromiter(values, dtype=np.float64, count=len(values))
    except OverflowError:  # JSON integers are unbounded: one past 1.8e308 must not sink the batch
        return np.array([_to_float(v) for v in values], dtype=np.float64)


def _to_float(value: Any) -> float:
    try:
        return float(value)
    except OverflowError:  # an integer past float range
        return math.inf if value > 0 else -math.inf
    except (TypeError, ValueError):
        return float("nan")
