"""The results store's schema, as SQLAlchemy Core tables.

The same tables serve SQLite (the default, one file next to the pipeline) and
PostgreSQL (shared by several workers), so only portable types are used:
``Float(53)`` is a double on both, JSON is TEXT on SQLite and ``jsonb`` on
PostgreSQL, and ``BigInteger`` surrogate keys become ``INTEGER PRIMARY KEY``
(the rowid) on SQLite so they autoincrement there too.

Every output table has a natural unique key that a replay reproduces exactly
(``(pipeline, event_id)`` for per-event rows, ``(pipeline, alert_key)`` for
alerts, ``(pipeline, source, position)`` for dead letters). Writers insert with
"on conflict do nothing" on that key, which is what makes replaying from the
last checkpoint produce no duplicates (see ``tocsin.checkpoint.base``).

Times (``event_time``, ``created_at``, ``updated_at``) are float epoch
seconds, like the batch's ``times`` column, so they compare without time zone
conversions on either database.
"""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Float,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import JSONB

from tocsin.vocabulary import SEVERITIES

ALERT_STATUSES = ("open", "acknowledged", "resolved")
FEEDBACK_LABELS = ("true_positive", "false_positive")

# Named constraints keep Alembic-style migrations and error messages readable.
metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "pk": "pk_%(table_name)s",
    }
)

Id = BigInteger().with_variant(Integer(), "sqlite")
Double = Float(53)
# JSONB on PostgreSQL so explanations and fields can be indexed and queried later.
Json = JSON().with_variant(JSONB(), "postgresql")


def _now() -> float:
    return time.time()


def _one_of(column: str, values: tuple[str, ...]) -> str:
    quoted = ", ".join(f"'{v}'" for v in values)
    return f"{column} IN ({quoted})"


anomalies = Table(
    "anomalies",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("pipeline", String(128), nullable=False),
    Column("event_id", String(255), nullable=False),
    Column("entity", String(255), nullable=False),
    Column("event_time", Double, nullable=False),
    Column("score", Double, nullable=False, comment="calibrated anomaly score in [0, 1]"),
    Column("score_100", Double, nullable=False, comment="score on a 0-100 scale, for people"),
    Column("raw_score", Double, nullable=True, comment="the detector's uncalibrated score"),
    Column("severity", String(16), nullable=False),
    Column("detector", String(128), nullable=False),
    Column("explanation", Json, nullable=False, default=list, comment="[{feature, contribution, text}]"),
    Column("fields", Json, nullable=False, default=dict, comment="the event's fields"),
    Column("label", Integer, nullable=True, comment="ground truth or feedback: 1 anomaly, 0 normal"),
    Column("created_at", Double, nullable=False, default=_now),
    UniqueConstraint("pipeline", "event_id"),
    CheckConstraint(_one_of("severity", SEVERITIES), name="severity"),
    Index(None, "pipeline", "event_time"),
    Index(None, "pipeline", "entity"),
    Index(None, "pipeline", "severity"),
)

alerts = Table(
    "alerts",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("pipeline", String(128), nullable=False),
    Column("alert_key", String(255), nullable=False, comment="dedup/grouping key; idempotency key"),
    Column("entity", String(255), nullable=False),
    Column("severity", String(16), nullable=False),
    Column("status", String(16), nullable=False, default="open"),
    Column("first_event_id", String(255), nullable=False),
    Column("event_time", Double, nullable=False),
    Column("score", Double, nullable=False),
    Column("count", Integer, nullable=False, default=1),
    Column("explanation", Json, nullable=False, default=list),
    Column("created_at", Double, nullable=False, default=_now),
    Column("updated_at", Double, nullable=False, default=_now),
    # who moved it, and when (added later: existing databases gain them on start, see add_missing_columns)
    Column("acknowledged_by", Text, nullable=True, comment="an API key id (key:...) or a token's subject"),
    Column("acknowledged_at", Double, nullable=True),
    Column("resolved_by", Text, nullable=True, comment="null when it resolved itself after a quiet period"),
    Column("resolved_at", Double, nullable=True),
    UniqueConstraint("pipeline", "alert_key"),
    CheckConstraint(_one_of("severity", SEVERITIES), name="severity"),
    CheckConstraint(_one_of("status", ALERT_STATUSES), name="status"),
    Index(None, "pipeline", "event_time"),
    Index(None, "pipeline", "status"),
)

dead_letters = Table(
    "dead_letters",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("pipeline", String(128), nullable=False),
    Column("source", String(255), nullable=False, comment="source and partition, e.g. 'kafka:tx/3'"),
    Column("position", BigInteger, nullable=False, comment="offset/line within the source"),
    Column("reason", Text, nullable=False),
    Column("raw", LargeBinary, nullable=True),
    Column("created_at", Double, nullable=False, default=_now),
    UniqueConstraint("pipeline", "source", "position"),
)

scored_events = Table(
    "scored_events",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("pipeline", String(128), nullable=False),
    Column("event_id", String(255), nullable=False),
    Column("entity", String(255), nullable=False),
    Column("event_time", Double, nullable=False),
    Column("score", Double, nullable=False),
    Column("is_anomaly", Boolean(create_constraint=False), nullable=False),
    UniqueConstraint("pipeline", "event_id"),
    Index(None, "pipeline", "event_time"),
)

feedback = Table(
    "feedback",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("pipeline", String(128), nullable=False),
    Column("event_id", String(255), nullable=False),
    Column("label", String(16), nullable=False),
    Column("note", Text, nullable=True),
    Column("author", Text, nullable=True, comment="who gave it (added later: null on older rows)"),
    Column("created_at", Double, nullable=False, default=_now),
    Column("alert_id", Integer, nullable=True, comment="the alert the verdict was given on (added later; null: on one anomaly)"),
    CheckConstraint(_one_of("label", FEEDBACK_LABELS), name="label"),
    Index(None, "pipeline", "event_id"),
)

model_comparisons = Table(
    "model_comparisons",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("pipeline", String(128), nullable=False),
    Column("stream", String(255), nullable=False),
    Column("position", BigInteger, nullable=False, comment="the batch's last position: a replay rewrites the same row"),
    Column("champion", Integer, nullable=False, comment="model version scoring live (0: the pipeline's own fit)"),
    Column("challenger", Integer, nullable=False, comment="model version scoring in shadow"),
    Column("events", Integer, nullable=False),
    Column("champion_anomalies", Integer, nullable=False),
    Column("challenger_anomalies", Integer, nullable=False),
    Column("both_anomalies", Integer, nullable=False),
    Column("labelled", Integer, nullable=False, comment="events with a ground-truth label"),
    Column("positives", Integer, nullable=False),
    Column("champion_true", Integer, nullable=False, comment="champion anomalies whose label is 1"),
    Column("challenger_true", Integer, nullable=False),
    Column("champion_scores", Json, nullable=False, comment="counts of calibrated scores in 20 bins of [0, 1]"),
    Column("challenger_scores", Json, nullable=False),
    Column("created_at", Double, nullable=False, default=_now),
    UniqueConstraint("pipeline", "stream", "position", "challenger"),
    Index(None, "pipeline", "challenger"),
)

TABLES: dict[str, Table] = {t.name: t for t in metadata.sorted_tables}

#: the natural key each table is idempotent on (None: every write is a new row)
CONFLICT_KEYS: dict[str, tuple[str, ...] | None] = {
    "model_comparisons": ("pipeline", "stream", "position", "challenger"),
    "anomalies": ("pipeline", "event_id"),
    "alerts": ("pipeline", "alert_key"),
    "dead_letters": ("pipeline", "source", "position"),
    "scored_events": ("pipeline", "event_id"),
    "feedback": None,
}


def create_tables(engine: Any, meta: MetaData = metadata, tables: list[Table] | None = None) -> None:
    """``meta.create_all`` that survives another process creating the same tables at the same time.

    Two workers starting together both see a table missing and both issue CREATE TABLE; the
    loser gets "already exists" (or, on PostgreSQL, a unique violation in its catalog). The
    tables are there then, so checking again is all it takes.
    """
    from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError

    for attempt in range(5):
        try:
            meta.create_all(engine, tables=tables)
            break
        except (OperationalError, ProgrammingError, IntegrityError) as error:
            text = str(error).lower()
            if attempt == 4 or not ("already exists" in text or "duplicate key" in text):
                raise
    add_missing_columns(engine, tables if tables is not None else list(meta.sorted_tables))


def add_missing_columns(engine: Any, tables: list[Table]) -> None:
    """``ALTER TABLE … ADD COLUMN`` for each column a table created by an earlier version lacks, so
    existing databases gain new columns on start (SQLite and PostgreSQL). Only nullable columns can be
    added to a table with rows; a new NOT NULL one needs a migration by hand, and this says so.

    Workers starting together may both add a column: the loser's "duplicate column" is success.
    """
    from sqlalchemy import inspect
    from sqlalchemy.exc import OperationalError, ProgrammingError

    inspector = inspect(engine)
    quote = engine.dialect.identifier_preparer.quote
    for table in tables:
        present = {c["name"] for c in inspector.get_columns(table.name)}
        for column in table.columns:
            if column.name in present:
                continue
            if not column.nullable:
                raise RuntimeError(
                    f"{table.name}.{column.name} is missing from the database and is NOT NULL, so it cannot be added "
                    "to existing rows: add it by hand (with a default) or start with a fresh store"
                )
            ddl = f"ALTER TABLE {quote(table.name)} ADD COLUMN {quote(column.name)} {column.type.compile(dialect=engine.dialect)}"
            try:
                with engine.begin() as conn:
                    conn.exec_driver_sql(ddl)
            except (OperationalError, ProgrammingError) as error:
                if "duplicate column" not in str(error).lower() and "already exists" not in str(error).lower():
                    raise
