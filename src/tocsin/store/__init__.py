"""The results store: SQLAlchemy tables and a batched, idempotent writer/reader."""

from tocsin.store.sql import Store
from tocsin.store.tables import metadata

__all__ = ["Store", "metadata"]
