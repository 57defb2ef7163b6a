"""State+offset checkpoints; :mod:`tocsin.checkpoint.base` states the ordering invariant."""

from pathlib import Path

from tocsin.checkpoint.base import Checkpoint, CheckpointError, CheckpointStore
from tocsin.checkpoint.local import LocalCheckpointStore
from tocsin.checkpoint.state import flatten_state, unflatten_state

__all__ = [
    "Checkpoint",
    "CheckpointError",
    "CheckpointStore",
    "LocalCheckpointStore",
    "flatten_state",
    "open_checkpoint_store",
    "unflatten_state",
]


def open_checkpoint_store(url: str | Path, namespace: str) -> CheckpointStore:
    """The checkpoint store at ``url``; ``namespace`` (the pipeline name) keeps pipelines apart.

    A plain path or ``file://`` URL is a local directory, ``redis://``/``rediss://``
    Redis, anything SQLAlchemy understands (``postgresql+psycopg://``, ``sqlite:///``)
    a table in that database.
    """
    url = str(url)
    if url.startswith(("redis://", "rediss://", "unix://")):
        from tocsin.checkpoint.redis import RedisCheckpointStore

        return RedisCheckpointStore(url, namespace=namespace)
    if url.startswith(("postgresql", "postgres://", "sqlite:")):
        from tocsin.checkpoint.postgres import SqlCheckpointStore

        return SqlCheckpointStore(url.replace("postgres://", "postgresql+psycopg://", 1), namespace=namespace)
    return LocalCheckpointStore(Path(url.removeprefix("file://")) / namespace)
