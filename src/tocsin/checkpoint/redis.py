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

import io
import json
import time
from typing import Any

import numpy as np

from tocsin.checkpoint.base import FORMAT_VERSION, Checkpoint, CheckpointError, CheckpointStore


def pack_checkpoint(partition: str, state: dict[str, np.ndarray], offset: int, meta: dict[str, Any] | None) -> tuple[bytes, float]:
    """The checkpoint as one ``.npz`` blob (no pickle) and its creation time."""
    keys = list(state)
    arrays: dict[str, np.ndarray] = {}
    for i, key in enumerate(keys):
        if not isinstance(key, str):
            raise TypeError(f"state key {key!r}: keys must be strings")
        array = np.asarray(state[key])
        if array.dtype.hasobject:
            raise TypeError(f"state {key!r}: object arrays cannot be checkpointed (they would need pickle)")
        arrays[f"s{i}"] = array
    created_at = time.time()
    header = {"format": FORMAT_VERSION, "partition": partition, "offset": int(offset), "meta": dict(meta or {}),
              "created_at": created_at, "keys": keys}
    arrays["meta"] = np.asarray(json.dumps(header))
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue(), created_at


def unpack_checkpoint(blob: bytes, where: str) -> Checkpoint:
    """The inverse of :func:`pack_checkpoint`; raises :class:`CheckpointError` on a damaged blob."""
    try:
        with np.load(io.BytesIO(blob), allow_pickle=False) as npz:
            header = json.loads(str(npz["meta"][()]))
            if header.get("format") != FORMAT_VERSION:
                raise ValueError(f"checkpoint format {header.get('format')!r}, expected {FORMAT_VERSION}")
            state = {key: npz[f"s{i}"] for i, key in enumerate(header["keys"])}
    except (OSError, EOFError, ValueError, KeyError, json.JSONDecodeError) as error:
        raise CheckpointError(f"checkpoint at {where} is unreadable: {type(error).__name__}: {error}") from None
    return Checkpoint(header["partition"], int(header["offset"]), state, header["meta"], float(header["created_at"]))


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
