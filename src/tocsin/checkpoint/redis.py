"""Checkpoints in Redis, for workers that move between machines.

A checkpoint is one blob (the same ``.npz`` layout as
:mod:`tocsin.checkpoint.local`: state arrays plus a JSON header with the
offset), written with one ``SET``: Redis applies a command whole, so
:meth:`RedisCheckpointStore.load` sees the old checkpoint or the new one,
never a mix (the atomicity :class:`~tocsin.checkpoint.base.CheckpointStore`
asks for). The index of partitions is a set updated in the same ``MULTI``.

Durability is Redis's: with ``appendonly yes`` and ``appendfsync everysec`` a
power loss costs at most a second of checkpoints, which replay recovers (the
sinks are idempotent). Without persistence a Redis restart loses every
checkpoint and the pipelines start over: configure persistence in production.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tocsin.checkpoint.base import Checkpoint, CheckpointError, CheckpointStore, pack_checkpoint, unpack_checkpoint


class RedisCheckpointStore(CheckpointStore):
    """Checkpoints under ``{prefix}:{namespace}:…`` in the Redis at ``url``."""

    def __init__(self, url: str, namespace: str = "default", prefix: str = "tocsin:checkpoint") -> None:
        import redis

        self.url = url
        self.client = redis.Redis.from_url(url, socket_timeout=10, socket_connect_timeout=5)
        self._base = f"{prefix}:{namespace}"

    def __repr__(self) -> str:
        return f"RedisCheckpointStore({self._base!r})"

    def _key(self, partition: str) -> str:
        if not isinstance(partition, str) or not partition:
            raise ValueError(f"partition: must be a non-empty string, got {partition!r}")
        return f"{self._base}:p:{partition}"

    def save(self, partition: str, state: dict[str, np.ndarray], offset: int, meta: dict[str, Any] | None = None) -> Checkpoint:
        blob, created_at = pack_checkpoint(partition, state, offset, meta)
        with self.client.pipeline(transaction=True) as pipe:
            pipe.set(self._key(partition), blob)
            pipe.sadd(f"{self._base}:index", partition)
            pipe.execute()
        return Checkpoint(partition, int(offset), dict(state), dict(meta or {}), created_at)

    def load(self, partition: str) -> Checkpoint | None:
        blob = self.client.get(self._key(partition))
        if blob is None:
            return None
        checkpoint = unpack_checkpoint(blob, f"redis key {self._key(partition)}")
        if checkpoint.partition != partition:
            raise CheckpointError(f"redis key {self._key(partition)} holds partition {checkpoint.partition!r}")
        return checkpoint

    def partitions(self) -> list[str]:
        return sorted(name.decode() for name in self.client.smembers(f"{self._base}:index"))

    def delete(self, partition: str) -> None:
        with self.client.pipeline(transaction=True) as pipe:
            pipe.delete(self._key(partition))
            pipe.srem(f"{self._base}:index", partition)
            pipe.execute()

    def close(self) -> None:
        self.client.close()
