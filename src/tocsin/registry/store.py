"""The built-in registry: model versions, aliases and arrays in tables of a SQL database (SQLite or PostgreSQL).

By default the tables live beside the results (``store.url``), so a pipeline that has a store has a
registry too. Four tables:

* ``model_versions``: one row per (pipeline, version) with the version's description;
* ``model_arrays``: the version's arrays as one ``.npz`` blob (:func:`~tocsin.registry.base.pack_arrays`),
  apart so that listing versions never reads a blob;
* ``model_aliases``: where each alias points now, keyed (pipeline, alias), so :meth:`StoreRegistry.alias`
  (polled by running drivers) is one primary-key lookup;
* ``model_alias_changes``: every promotion and rollback, in order (what ``rollback`` walks back).

Version numbers are the pipeline's largest plus one, inserted under the (pipeline, version) primary key:
two ``tocsin train`` registering at once both compute the same number, one insert wins and the other
gets a unique violation and takes the next number. A version's row and its arrays are written in one
transaction, and no statement here updates either afterwards (a version number means one model for ever).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import BigInteger, Column, Index, Integer, LargeBinary, MetaData, String, Table, Text, create_engine, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError

from tocsin.registry.base import (
    ALIASES,
    AliasChange,
    ModelVersion,
    Registry,
    RegistryError,
    check_alias,
    pack_arrays,
    plain_metrics,
    unknown_version,
    unpack_arrays,
)
from tocsin.store.tables import Double, Id, create_tables

#: attempts at taking the next version number when other processes keep taking it first
NUMBERING_ATTEMPTS = 50

registry_metadata = MetaData(naming_convention={"ix": "ix_%(table_name)s_%(column_0_N_name)s", "pk": "pk_%(table_name)s"})

model_versions = Table(
    "model_versions",
    registry_metadata,
    Column("pipeline", String(128), primary_key=True),
    Column("version", Integer, primary_key=True, autoincrement=False, comment="1, 2, 3… per pipeline"),
    Column("spec_hash", String(64), nullable=False, comment="hash of the spec sections it was trained for"),
    Column("detector", String(128), nullable=False),
    Column("feature_names", Text, nullable=False, comment="JSON list, in the detector's column order"),
    Column("sections", Text, nullable=False, comment="JSON: the spec's features, detector and schema sections"),
    Column("trained_from", Double, nullable=True, comment="event time of the first training row"),
    Column("trained_until", Double, nullable=True),
    Column("rows", BigInteger, nullable=False, comment="training rows"),
    Column("metrics", Text, nullable=False, comment="JSON object: metric → number or null"),
    Column("tocsin_version", String(64), nullable=False),
    Column("created_by", Text, nullable=False),
    Column("created_at", Double, nullable=False),
    Column("note", Text, nullable=False),
)

model_arrays = Table(
    "model_arrays",
    registry_metadata,
    Column("pipeline", String(128), primary_key=True),
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("arrays", LargeBinary, nullable=False, comment=".npz blob of the version's arrays (no pickle)"),
)

model_aliases = Table(
    "model_aliases",
    registry_metadata,
    Column("pipeline", String(128), primary_key=True),
    Column("alias", String(32), primary_key=True),
    Column("version", Integer, nullable=True, comment="null: the alias was removed"),
    Column("changed_at", Double, nullable=False),
)

model_alias_changes = Table(
    "model_alias_changes",
    registry_metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("pipeline", String(128), nullable=False),
    Column("alias", String(32), nullable=False),
    Column("version", Integer, nullable=True),
    Column("kind", String(16), nullable=False, comment="promote or rollback"),
    Column("changed_by", Text, nullable=False),
    Column("changed_at", Double, nullable=False),
    Index(None, "pipeline", "alias", "id"),
)

_DESCRIPTION_COLUMNS = [c for c in model_versions.columns]


class StoreRegistry(Registry):
    """Model versions in the database at the SQLAlchemy ``url`` (``sqlite:///…``, ``postgresql+psycopg://…``);
    the tables are created on first use."""

    def __init__(self, url: str) -> None:
        parsed = make_url(url)
        backend = parsed.get_backend_name()
        if backend not in ("postgresql", "sqlite"):
            raise RegistryError(f"registry url: unsupported database {backend!r}; use postgresql or sqlite")
        if backend == "sqlite" and parsed.database and parsed.database != ":memory:" and not parsed.database.startswith("file:"):
            Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        self.engine = create_engine(parsed, pool_pre_ping=backend != "sqlite", hide_parameters=True)
        self._insert = postgresql.insert if backend == "postgresql" else sqlite.insert
        create_tables(self.engine, registry_metadata)

    def __repr__(self) -> str:
        return f"StoreRegistry({self.engine.url.render_as_string(hide_password=True)!r})"

    # --- versions -------------------------------------------------------------------------

    def register(self, version: ModelVersion, arrays: dict[str, np.ndarray]) -> ModelVersion:
        blob = pack_arrays(arrays)
        row = {
            "pipeline": version.pipeline, "spec_hash": version.spec_hash, "detector": version.detector,
            "feature_names": json.dumps(list(version.feature_names)), "sections": json.dumps(version.sections, sort_keys=True),
            "trained_from": version.trained_from, "trained_until": version.trained_until, "rows": int(version.rows),
            "metrics": json.dumps(plain_metrics(version.metrics)), "tocsin_version": version.tocsin_version,
            "created_by": version.created_by, "created_at": float(version.created_at), "note": version.note,
        }
        latest = model_versions.c.version
        for _attempt in range(NUMBERING_ATTEMPTS):
            try:
                with self.engine.begin() as conn:
                    number = (conn.execute(select(func.max(latest)).where(model_versions.c.pipeline == version.pipeline)).scalar() or 0) + 1
                    conn.execute(model_versions.insert().values({**row, "version": number}))
                    conn.execute(model_arrays.insert().values(pipeline=version.pipeline, version=number, arrays=blob))
            except IntegrityError:
                continue  # another process took this number first: take the next one
            return self.get(version.pipeline, number)
        raise RegistryError(f"could not number a new version of {version.pipeline!r}: {NUMBERING_ATTEMPTS} attempts lost to other writers")

    def versions(self, pipeline: str) -> list[ModelVersion]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(*_DESCRIPTION_COLUMNS).where(model_versions.c.pipeline == pipeline).order_by(model_versions.c.version)
            ).mappings().all()
            pointers = conn.execute(
                select(model_aliases.c.alias, model_aliases.c.version).where(model_aliases.c.pipeline == pipeline)
            ).all()
        aliases: dict[int, list[str]] = {}
        for name, number in sorted(pointers, key=lambda p: ALIASES.index(p[0]) if p[0] in ALIASES else len(ALIASES)):
            if number is not None:
                aliases.setdefault(number, []).append(name)
        return [_version(row, tuple(aliases.get(row["version"], ()))) for row in rows]

    def arrays(self, pipeline: str, version: int) -> dict[str, np.ndarray]:
        statement = select(model_arrays.c.arrays).where(model_arrays.c.pipeline == pipeline, model_arrays.c.version == int(version))
        with self.engine.connect() as conn:
            blob = conn.execute(statement).scalar_one_or_none()
        if blob is None:
            raise unknown_version(pipeline, version, [v.version for v in self.versions(pipeline)])
        return unpack_arrays(bytes(blob))

    # --- aliases --------------------------------------------------------------------------

    def alias(self, pipeline: str, name: str) -> int | None:
        check_alias(name)
        statement = select(model_aliases.c.version).where(model_aliases.c.pipeline == pipeline, model_aliases.c.alias == name)
        with self.engine.connect() as conn:
            return conn.execute(statement).scalar_one_or_none()

    def _record_alias(self, pipeline: str, change: AliasChange) -> None:
        pointer = self._insert(model_aliases).values(pipeline=pipeline, alias=change.alias, version=change.version, changed_at=change.at)
        pointer = pointer.on_conflict_do_update(
            index_elements=["pipeline", "alias"], set_={"version": pointer.excluded.version, "changed_at": pointer.excluded.changed_at},
        )
        with self.engine.begin() as conn:  # the pointer and its history move together
            conn.execute(model_alias_changes.insert().values(
                pipeline=pipeline, alias=change.alias, version=change.version, kind=change.kind, changed_by=change.by, changed_at=change.at,
            ))
            conn.execute(pointer)

    def alias_history(self, pipeline: str, name: str) -> list[AliasChange]:
        check_alias(name)
        changes = model_alias_changes.c
        statement = select(changes.alias, changes.version, changes.changed_at, changes.changed_by, changes.kind).where(
            changes.pipeline == pipeline, changes.alias == name).order_by(changes.id)
        with self.engine.connect() as conn:
            return [AliasChange(alias, version, at, by, kind) for alias, version, at, by, kind in conn.execute(statement)]

    def close(self) -> None:
        self.engine.dispose()


def _version(row: Any, aliases: tuple[str, ...]) -> ModelVersion:
    return ModelVersion(
        pipeline=row["pipeline"], spec_hash=row["spec_hash"], feature_names=json.loads(row["feature_names"]), detector=row["detector"],
        sections=json.loads(row["sections"]), trained_from=row["trained_from"], trained_until=row["trained_until"], rows=row["rows"],
        metrics=json.loads(row["metrics"]), tocsin_version=row["tocsin_version"], created_by=row["created_by"],
        created_at=row["created_at"], version=row["version"], aliases=aliases, note=row["note"],
    )
