"""The results store: anomalies, alerts, dead letters, scored events, feedback.

One :class:`Store` over a SQLAlchemy engine, SQLite by default and PostgreSQL
with the same code. Writers take lists of dicts (one per row) and write them
with a single ``executemany`` per table inside one transaction, so sinks stay
batched. Every insert is "on conflict do nothing" on the table's natural key
(:data:`tocsin.store.tables.CONFLICT_KEYS`): replaying events after a crash
rewrites the same keys and adds nothing, which is what lets the runner replay
from the last checkpoint (see :mod:`tocsin.checkpoint.base`).

A row that breaks a constraint (a missing required field, an unknown severity)
raises and rolls the whole call back; nothing of that call is written.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
from sqlalchemy import (
    Boolean,
    Connection,
    Float,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
    and_,
    bindparam,
    create_engine,
    event,
    func,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from tocsin.store.tables import (
    ALERT_STATUSES,
    CONFLICT_KEYS,
    TABLES,
    alerts,
    anomalies,
    create_tables,
    dead_letters,
    feedback,
    model_comparisons,
)
from tocsin.vocabulary import ALERT_SEVERITIES

Row = Mapping[str, Any]

_SUPPORTED_DIALECTS = ("sqlite", "postgresql")


# --- JSON ---------------------------------------------------------------------


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"cannot store a {type(value).__name__} as JSON")


_json_encoder = msgspec.json.Encoder(enc_hook=_json_default)


def _json_serialize(value: Any) -> str:
    # msgspec writes NaN/inf as null: PostgreSQL's jsonb rejects the NaN that
    # json.dumps would write, and explanations of odd events may contain one.
    return _json_encoder.encode(value).decode()


def _json_deserialize(value: str | bytes) -> Any:
    return msgspec.json.decode(value)


# --- row coercion ---------------------------------------------------------------


def _to_float(value: Any) -> float:
    return float(value)


def _to_int(value: Any) -> int:
    return int(value)


def _to_str(value: Any) -> str:
    return str(value)


def _to_bool(value: Any) -> bool:
    return bool(value)


def _to_bytes(value: Any) -> bytes:
    if isinstance(value, str):
        return value.encode("utf-8")
    return bytes(value)


def _coercer(column_type: Any) -> Callable[[Any], Any] | None:
    """A converter to the driver's native Python type, so NumPy scalars bind.

    ``np.int64``/``np.float32``/``np.str_`` are not what DB-API drivers accept,
    and converting here keeps every caller from doing it.
    """
    if isinstance(column_type, Boolean):
        return _to_bool
    if isinstance(column_type, Float):
        return _to_float
    if isinstance(column_type, Integer):  # includes BigInteger
        return _to_int
    if isinstance(column_type, String | Text):
        return _to_str
    if isinstance(column_type, LargeBinary):
        return _to_bytes
    return None  # JSON: the serializer handles NumPy values


class _RowShape:
    """How to turn a caller's dict into a full parameter set for one table.

    ``executemany`` needs every row to carry the same keys, so absent optional
    columns get their default (or None) here; an absent required column stays
    None and the database's NOT NULL rejects it.
    """

    def __init__(self, table: Table):
        self.table = table
        #: (name, coerce, default); default is _NOW for "the time of this write"
        self.columns: list[tuple[str, Callable[[Any], Any] | None, Any]] = []
        for column in table.columns:
            if column.primary_key and column.autoincrement:
                continue
            default = None
            if column.default is not None and column.default.is_scalar:
                default = column.default.arg
            elif column.default is not None and column.default.is_callable:
                # SQLAlchemy wraps callables to take an execution context
                default = _NOW if column.name.endswith("_at") else _Factory(column.default.arg)
            self.columns.append((column.name, _coercer(column.type), default))

    def rows(self, pipeline: str, rows: Iterable[Row]) -> list[dict[str, Any]]:
        now = time.time()  # one timestamp per write, so created_at == updated_at on insert
        out = []
        for row in rows:
            params: dict[str, Any] = {}
            for name, coerce, default in self.columns:
                value = row.get(name)
                if value is None:
                    if default is _NOW:
                        value = now
                    elif isinstance(default, _Factory):
                        value = default.make()
                    else:
                        value = default
                elif coerce is not None:
                    value = coerce(value)
                params[name] = value
            params["pipeline"] = pipeline
            out.append(params)
        return out


_NOW = object()


class _Factory:
    """A callable column default (``list``, ``dict``) called once per row."""

    def __init__(self, fn: Callable[[Any], Any]):
        self.fn = fn

    def make(self) -> Any:
        return self.fn(None)


_SHAPES = {name: _RowShape(table) for name, table in TABLES.items()}


# --- the store --------------------------------------------------------------------


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets the API read while the runner writes; synchronous=NORMAL under WAL
    # can lose the last transactions on power loss but never corrupts the file,
    # and replay from the checkpoint rewrites whatever was lost.
    cursor = dbapi_connection.cursor()
    # Switching to WAL takes the file's exclusive lock and SQLite does not wait for it (the busy timeout does
    # not apply): processes opening a new store at once got "database is locked". Wait for it here.
    deadline = time.monotonic() + _WAL_WAIT_S
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            break
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


_WAL_WAIT_S = 10.0
"""How long a new connection waits for the lock that switching to WAL needs, as SQLite's busy timeout would."""


class StoreUnavailable(RuntimeError):
    """The store cannot take writes now (gone, read-only, unreachable); retry later."""


class Store:
    """The results store at a SQLAlchemy ``url`` (``sqlite:///path.db``,
    ``postgresql+psycopg://…``); creates the tables if missing."""

    def __init__(self, url: str):
        parsed = make_url(url)
        backend = parsed.get_backend_name()
        if backend not in _SUPPORTED_DIALECTS:
            raise ValueError(
                f"store url {parsed.render_as_string(hide_password=True)!r}: "
                f"unsupported database {backend!r}; use one of {_SUPPORTED_DIALECTS}"
            )
        #: the SQLite file, whose identity is checked before each write (None: another database)
        self.path: Path | None = None
        if backend == "sqlite":
            database = parsed.database
            if database and database != ":memory:" and not database.startswith("file:"):
                self.path = Path(database).expanduser()
                self.path.parent.mkdir(parents=True, exist_ok=True)
        self.url = url
        self.engine = create_engine(
            parsed,
            json_serializer=_json_serialize,
            json_deserializer=_json_deserialize,
            pool_pre_ping=backend != "sqlite",
            hide_parameters=True,  # errors and logs never carry event values (sensitive fields included)
        )
        if backend == "sqlite":
            event.listen(self.engine, "connect", _sqlite_pragmas)
        self._insert = sqlite.insert if backend == "sqlite" else postgresql.insert
        create_tables(self.engine)
        self._identity = self._file_identity()

    def __repr__(self) -> str:
        return f"Store({self.engine.url.render_as_string(hide_password=True)!r})"

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Release all connections."""
        self.engine.dispose()

    def _file_identity(self) -> tuple[int, int] | None:
        if self.path is None:
            return None
        stat = self.path.stat()
        return stat.st_dev, stat.st_ino

    def check_file(self) -> None:
        """Before a write to a SQLite file: raise :class:`StoreUnavailable` when the file is gone (open
        connections would go on writing to the deleted file: writes that land nowhere), and reconnect
        when another file took its place (restored from a backup)."""
        if self.path is None:
            return
        try:
            identity = self._file_identity()
        except FileNotFoundError:
            raise StoreUnavailable(f"the store's database file {self.path} is gone; restore it (nothing is written meanwhile)") from None
        if identity != self._identity:
            self.engine.dispose()  # connections to the old file go; the next ones open the file now there
            create_tables(self.engine)
            self._identity = identity

    def check_writable(self) -> None:
        """Raise :class:`StoreUnavailable` unless a write transaction could commit now (the file is there
        and writable, the database is not read-only); writes nothing."""
        try:
            self.check_file()
            with self.engine.connect() as conn:
                if self.engine.dialect.name == "sqlite":
                    conn.exec_driver_sql("BEGIN IMMEDIATE")  # takes the write lock: fails on a read-only file
                    conn.exec_driver_sql("ROLLBACK")
                else:
                    read_only = conn.execute(text("SELECT current_setting('transaction_read_only') = 'on' OR pg_is_in_recovery()")).scalar()
                    conn.rollback()
                    if read_only:
                        raise StoreUnavailable("the database is read-only (a replica, or default_transaction_read_only)")
        except SQLAlchemyError as error:
            raise StoreUnavailable(f"the store cannot write: {type(error).__name__}: {str(error).splitlines()[0]}") from error

    def ping(self) -> bool:
        """True if the database answers a trivial query."""
        try:
            with self.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            return True
        except (SQLAlchemyError, OSError):
            return False

    # --- writes ---------------------------------------------------------------

    def write_rows(self, conn: Connection, table_name: str, pipeline: str, rows: Sequence[Row]) -> None:
        """Idempotent insert of ``rows`` inside the caller's transaction ``conn`` (for writers that add
        their own tables to the same transaction, like the alert outbox)."""
        if not rows:
            return
        params = _SHAPES[table_name].rows(pipeline, rows)
        table = TABLES[table_name]
        key = CONFLICT_KEYS[table_name]
        if key is None:
            statement = table.insert()
        else:
            statement = self._insert(table).on_conflict_do_nothing(index_elements=list(key))
        conn.execute(statement, params)

    def write_anomalies(self, pipeline: str, rows: Sequence[Row]) -> None:
        """Insert anomaly rows; a row whose ``(pipeline, event_id)`` exists is skipped."""
        self.write_batch(pipeline, anomalies=rows)

    def write_alerts(self, pipeline: str, rows: Sequence[Row]) -> None:
        """Insert alerts; a row whose ``(pipeline, alert_key)`` exists is skipped."""
        self.write_batch(pipeline, alerts=rows)

    def write_dead_letters(self, pipeline: str, rows: Sequence[Row]) -> None:
        """Insert dead letters; a row whose ``(pipeline, source, position)`` exists is skipped."""
        self.write_batch(pipeline, dead_letters=rows)

    def write_scored_events(self, pipeline: str, rows: Sequence[Row]) -> None:
        """Insert scored events; a row whose ``(pipeline, event_id)`` exists is skipped."""
        self.write_batch(pipeline, scored_events=rows)

    def write_batch(
        self,
        pipeline: str,
        *,
        anomalies: Sequence[Row] = (),
        alerts: Sequence[Row] = (),
        dead_letters: Sequence[Row] = (),
        scored_events: Sequence[Row] = (),
    ) -> None:
        """Write one batch's outputs in ONE transaction: all of them land, or none.

        Returning is the sink's acknowledgement: the runner may checkpoint past
        these events only after this returns.
        """
        outputs = (
            ("anomalies", anomalies),
            ("alerts", alerts),
            ("dead_letters", dead_letters),
            ("scored_events", scored_events),
        )
        with self.engine.begin() as conn:
            for table_name, rows in outputs:
                self.write_rows(conn, table_name, pipeline, rows)

    def write_feedback(self, pipeline: str, rows: Sequence[Row]) -> None:
        """Record people's verdicts (``{event_id, label, note}``, label
        ``"true_positive"``/``"false_positive"``) and set the anomalies' ``label``
        to 1/0 in the same transaction. Every call adds rows: feedback is a log."""
        if not rows:
            return
        with self.engine.begin() as conn:
            self.write_rows(conn, "feedback", pipeline, rows)
            conn.execute(
                update(anomalies)
                .where(
                    anomalies.c.pipeline == pipeline,
                    anomalies.c.event_id == bindparam("b_event_id"),
                )
                .values(label=bindparam("b_label")),
                [
                    {
                        "b_event_id": str(row["event_id"]),
                        "b_label": 1 if row["label"] == "true_positive" else 0,
                    }
                    for row in rows
                ],
            )

    def set_alert_status(self, pipeline: str, alert_id: int, status: str, now: float | None = None, by: str | None = None) -> bool:
        """Move an alert to ``open``/``acknowledged``/``resolved``; an acknowledgement or a resolution
        records who (``by``: a key id or a token's subject) and when. False if no such alert."""
        if status not in ALERT_STATUSES:
            raise ValueError(f"status: {status!r} is not one of {ALERT_STATUSES}")
        now = time.time() if now is None else now
        values: dict[str, Any] = {"status": status, "updated_at": now}
        if status != "open":
            values.update({f"{status}_by": by, f"{status}_at": now})
        with self.engine.begin() as conn:
            result = conn.execute(update(alerts).where(alerts.c.pipeline == pipeline, alerts.c.id == int(alert_id)).values(**values))
        return result.rowcount > 0

    # --- reads ------------------------------------------------------------------

    def fetch(self, statement: Any) -> list[dict[str, Any]]:
        """Rows of any SQLAlchemy select on this store, as dicts."""
        with self.engine.connect() as conn:
            return [dict(row._mapping) for row in conn.execute(statement)]

    @staticmethod
    def _newest_first_by_time(table: Table, statement: Any, after_id: int | None) -> Any:
        """Order by (event_time, id) descending; ``after_id`` is the last id of the
        previous page (keyset pagination, stable while rows are inserted)."""
        if after_id is not None:
            anchor_time = select(table.c.event_time).where(table.c.id == after_id).scalar_subquery()
            statement = statement.where(
                or_(
                    table.c.event_time < anchor_time,
                    and_(table.c.event_time == anchor_time, table.c.id < after_id),
                )
            )
        return statement.order_by(table.c.event_time.desc(), table.c.id.desc())

    def anomalies(
        self,
        pipeline: str | None = None,
        entity: str | None = None,
        severity: str | Sequence[str] | None = None,
        since: float | None = None,
        until: float | None = None,
        limit: int = 100,
        after_id: int | None = None,
    ) -> list[dict[str, Any]]:
        """Anomalies newest event first, filtered; ``since`` <= event_time < ``until``.

        For the next page pass the last row's ``id`` as ``after_id``.
        """
        t = anomalies
        statement = select(t)
        statement = _where(statement, t, pipeline=pipeline, entity=entity, severity=severity)
        statement = _time_range(statement, t, since, until)
        statement = self._newest_first_by_time(t, statement, after_id)
        return self.fetch(statement.limit(_limit(limit)))

    def alerts(
        self,
        pipeline: str | None = None,
        entity: str | None = None,
        severity: str | Sequence[str] | None = None,
        status: str | Sequence[str] | None = None,
        since: float | None = None,
        until: float | None = None,
        limit: int = 100,
        after_id: int | None = None,
    ) -> list[dict[str, Any]]:
        """Alerts newest event first, filtered; paginate with ``after_id`` as in :meth:`anomalies`."""
        t = alerts
        statement = select(t)
        statement = _where(statement, t, pipeline=pipeline, entity=entity, severity=severity, status=status)
        statement = _time_range(statement, t, since, until)
        statement = self._newest_first_by_time(t, statement, after_id)
        return self.fetch(statement.limit(_limit(limit)))

    def dead_letters(
        self,
        pipeline: str | None = None,
        source: str | None = None,
        limit: int = 100,
        after_id: int | None = None,
    ) -> list[dict[str, Any]]:
        """Dead letters, most recently written first; ``after_id``: ids below it."""
        t = dead_letters
        statement = _where(select(t), t, pipeline=pipeline, source=source)
        if after_id is not None:
            statement = statement.where(t.c.id < after_id)
        return self.fetch(statement.order_by(t.c.id.desc()).limit(_limit(limit)))

    def feedback(
        self, pipeline: str | None = None, event_id: str | None = None, limit: int = 100, alert_id: int | None = None
    ) -> list[dict[str, Any]]:
        """Feedback rows, most recent first (``alert_id``: those of verdicts given on that alert)."""
        t = feedback
        statement = _where(select(t), t, pipeline=pipeline, event_id=event_id)
        if alert_id is not None:
            statement = statement.where(t.c.alert_id == int(alert_id))
        return self.fetch(statement.order_by(t.c.id.desc()).limit(_limit(limit)))

    def anomaly_rows(self, pipeline: str, event_ids: Sequence[str]) -> list[dict[str, Any]]:
        """The stored anomalies of ``pipeline`` with these event ids (any order)."""
        t = anomalies
        return self.fetch(select(t).where(t.c.pipeline == pipeline, t.c.event_id.in_(list(event_ids))))

    def has_anomaly(self, pipeline: str, event_id: str) -> bool:
        """Whether ``event_id`` of ``pipeline`` was stored as an anomaly."""
        t = anomalies
        return bool(self.fetch(select(t.c.id).where(t.c.pipeline == pipeline, t.c.event_id == event_id).limit(1)))

    def alert_counts(self, pipeline: str) -> dict[str, dict[str, int]]:
        """``pipeline``'s alerts counted ``by_severity`` (warning, critical) and ``by_status`` (open,
        acknowledged, resolved), every name present (0 when none)."""
        t = alerts
        counts: dict[str, dict[str, int]] = {"by_severity": dict.fromkeys(ALERT_SEVERITIES, 0),
                                             "by_status": dict.fromkeys(ALERT_STATUSES, 0)}
        rows = self.fetch(select(t.c.severity, t.c.status, func.count().label("n")).where(t.c.pipeline == pipeline)
                          .group_by(t.c.severity, t.c.status))
        for row in rows:
            counts["by_severity"][row["severity"]] = counts["by_severity"].get(row["severity"], 0) + row["n"]
            counts["by_status"][row["status"]] = counts["by_status"].get(row["status"], 0) + row["n"]
        return counts

    def model_comparisons(self, pipeline: str, challenger: int | None = None) -> list[dict[str, Any]]:
        """The challenger's per-batch comparison rows with the champion (``engine/shadow.py``), oldest first."""
        t = model_comparisons
        statement = select(t).where(t.c.pipeline == pipeline)
        if challenger is not None:
            statement = statement.where(t.c.challenger == challenger)
        return self.fetch(statement.order_by(t.c.id))

    def count(self, table_name: str, pipeline: str | None = None) -> int:
        """Number of rows in ``table_name``, optionally of one pipeline."""
        if table_name not in TABLES:
            raise ValueError(f"table_name: {table_name!r} is not one of {sorted(TABLES)}")
        table = TABLES[table_name]
        statement = select(func.count()).select_from(table)
        if pipeline is not None:
            statement = statement.where(table.c.pipeline == pipeline)
        with self.engine.connect() as conn:
            return int(conn.execute(statement).scalar_one())

    def anomaly_event_ids(self, pipeline: str) -> set[str]:
        """Every event id stored as an anomaly of ``pipeline`` (backtests, replay checks)."""
        statement = select(anomalies.c.event_id).where(anomalies.c.pipeline == pipeline)
        with self.engine.connect() as conn:
            return set(conn.execute(statement).scalars())


def _limit(limit: int) -> int:
    if int(limit) < 1:
        raise ValueError(f"limit: must be a positive integer, got {limit!r}")
    return int(limit)


def _where(statement: Any, table: Table, **filters: str | Sequence[str] | None) -> Any:
    for name, value in filters.items():
        if value is None:
            continue
        column = table.c[name]
        if isinstance(value, str):
            statement = statement.where(column == value)
        else:
            statement = statement.where(column.in_(list(value)))
    return statement


def _time_range(statement: Any, table: Table, since: float | None, until: float | None) -> Any:
    if since is not None:
        statement = statement.where(table.c.event_time >= float(since))
    if until is not None:
        statement = statement.where(table.c.event_time < float(until))
    return statement
