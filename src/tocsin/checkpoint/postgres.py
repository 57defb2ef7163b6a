"""Checkpoints in a SQL database (PostgreSQL in production; SQLite works too).

One row per (namespace, partition) holding the offset, the meta and the state
as one ``.npz`` blob (see :func:`tocsin.checkpoint.base.pack_checkpoint`). A
save is one ``INSERT … ON CONFLICT DO UPDATE`` in its own transaction, so the
row is replaced whole or not at all: a crash mid-save leaves the previous
checkpoint, which is the atomicity :class:`~tocsin.checkpoint.base.CheckpointStore`
asks for. The table lives beside the results store's tables and is written
through the same SQLAlchemy code path on PostgreSQL and SQLite.
"""

from __future__ import annotations

from typing import Any

import msgspec
import numpy as np
from sqlalchemy import BigInteger, Column, Float, LargeBinary, MetaData, String, Table, Text, create_engine, delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url

from tocsin.checkpoint.base import Checkpoint, CheckpointError, CheckpointStore
from tocsin.checkpoint.base import pack_checkpoint, unpack_checkpoint
from tocsin.store.tables import create_tables

checkpoint_metadata = MetaData()

checkpoints = Table(
    "checkpoints",
    checkpoint_metadata,
    Column("namespace", String(128), primary_key=True, comment="the pipeline name"),
    Column("partition", String(255), primary_key=True, comment="e.g. 'events/3'"),
    Column("offset", BigInteger, nullable=False, comment="last source position folded into the state"),
    Column("meta", Text, nullable=False),
    Column("state", LargeBinary, nullable=False, comment=".npz blob: state arrays + header"),
    Column("created_at", Float(53), nullable=False),
)


class SqlCheckpointStore(CheckpointStore):
    """Checkpoints in the ``checkpoints`` table of the database at ``url`` (created if missing)."""

    def __init__(self, url: str, namespace: str = "default") -> None:
        parsed = make_url(url)
        backend = parsed.get_backend_name()
        if backend not in ("postgresql", "sqlite"):
            raise ValueError(f"checkpoint url: unsupported database {backend!r}; use postgresql or sqlite")
        self.namespace = namespace
        self.engine = create_engine(parsed, pool_pre_ping=backend != "sqlite")
        self._insert = postgresql.insert if backend == "postgresql" else sqlite.insert
        create_tables(self.engine, checkpoint_metadata)

    def __repr__(self) -> str:
        return f"SqlCheckpointStore({self.engine.url.render_as_string(hide_password=True)!r}, {self.namespace!r})"

    def save(self, partition: str, state: dict[str, np.ndarray], offset: int, meta: dict[str, Any] | None = None) -> Checkpoint:
        if not isinstance(partition, str) or not partition:
            raise ValueError(f"partition: must be a non-empty string, got {partition!r}")
        blob, created_at = pack_checkpoint(partition, state, offset, meta)
        row = {"namespace": self.namespace, "partition": partition, "offset": int(offset),
               "meta": msgspec.json.encode(dict(meta or {})).decode(), "state": blob, "created_at": created_at}
        statement = self._insert(checkpoints).values(row)
        statement = statement.on_conflict_do_update(
            index_elements=["namespace", "partition"],
            set_={k: statement.excluded[k] for k in ("offset", "meta", "state", "created_at")},
        )
        with self.engine.begin() as conn:
            conn.execute(statement)
        return Checkpoint(partition, int(offset), dict(state), dict(meta or {}), created_at)

    def load(self, partition: str) -> Checkpoint | None:
        statement = select(checkpoints.c.state).where(
            checkpoints.c.namespace == self.namespace, checkpoints.c.partition == partition
        )
        with self.engine.connect() as conn:
            blob = conn.execute(statement).scalar_one_or_none()
        if blob is None:
            return None
        checkpoint = unpack_checkpoint(bytes(blob), f"table checkpoints ({self.namespace!r}, {partition!r})")
        if checkpoint.partition != partition:
            raise CheckpointError(f"checkpoint row of {partition!r} holds partition {checkpoint.partition!r}")
        return checkpoint

    def partitions(self) -> list[str]:
        statement = select(checkpoints.c.partition).where(checkpoints.c.namespace == self.namespace)
        with self.engine.connect() as conn:
            return sorted(conn.execute(statement).scalars())

    def delete(self, partition: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(delete(checkpoints).where(checkpoints.c.namespace == self.namespace, checkpoints.c.partition == partition))

    def close(self) -> None:
        self.engine.dispose()


#: the name the issue uses; the same class serves PostgreSQL and SQLite
PostgresCheckpointStore = SqlCheckpointStore
