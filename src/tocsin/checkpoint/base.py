"""Ordering invariant: sinks acknowledge, then (state, offset) is saved atomically, then the offset is committed.

A checkpoint is a partition's state saved together with the offset it
reflects. For each checkpoint at source offset X of a partition:

1. **Sinks first.** Every sink has acknowledged every output of every event up
   to and including X (the store's transaction committed, the Kafka producer
   flushed, the webhook answered).
2. **Then state and position, together.** ``(state at X, X)`` is written to the
   checkpoint store in one atomic step: a reader sees the old pair or the new
   pair, never a mix. This pair is the source of truth for where a partition
   resumes.
3. **Only then the broker.** X may be committed to Kafka. That commit is
   advisory (lag dashboards, tooling); a worker resumes from the offset saved
   *with* its state, never from the broker's.

A crash at any point replays from the last checkpoint: state and offset go back
to a consistent pair, the events after it are processed again, and the outputs
they produce again are absorbed by idempotent sinks (every output is keyed by
event id, alert key or source position and written "insert, on conflict do
nothing"; see :mod:`tocsin.store.tables`).

What breaks if the order is violated:

- **State ahead of outputs** (step 2 before step 1 finished): a crash after the
  state was saved but before the sink acknowledged resumes *after* events whose
  anomalies and alerts were never delivered. Nothing replays them: **alerts are
  lost**, silently.
- **Offset ahead of state** (a position saved or trusted separately from the
  state it belongs to, e.g. resuming from the broker's committed offset while
  the state is older, or the reverse): events between the two positions are
  either folded into per-key state **twice** (counts, rates and baselines
  inflated, so false alerts) or **never** (baselines miss them, so anomalies
  slip under the threshold). Keeping offset and state in one atomic write is
  what makes this impossible.
- **A non-atomic write** (state file overwritten in place): a crash mid-write
  leaves a truncated checkpoint and no good one; the partition must start over.
  :class:`~tocsin.checkpoint.local.LocalCheckpointStore` writes a temp file,
  fsyncs, renames over the old one and keeps the previous checkpoint as a
  fallback.

The time budget matters as much as the order: a checkpoint must finish within
the broker's rebalance/poll deadline, or the partition moves to another worker
while this one still writes (Quix Streams #1067, #1146, #1114). Checkpoint
interval and sink flush sizes are chosen so a checkpoint takes well under that.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
import io
import json
import time
import zipfile
from typing import Any

import numpy as np

#: version of the on-disk checkpoint layout; bump on incompatible changes
FORMAT_VERSION = 1


class CheckpointError(RuntimeError):
    """No usable checkpoint although one was written (all copies unreadable)."""


@dataclass
class Checkpoint:
    """One partition's state at ``offset``: the events up to and including
    ``offset`` are folded into ``state``; resume by reading from ``offset + 1``."""

    partition: str
    offset: int
    #: flat state (see :func:`tocsin.checkpoint.state.flatten_state`)
    state: dict[str, np.ndarray]
    #: small JSON-serializable facts about the checkpoint (model version, spec hash…)
    meta: dict[str, Any] = field(default_factory=dict)
    #: epoch seconds when it was saved
    created_at: float = 0.0


class CheckpointStore(ABC):
    """Where (state, offset) pairs live: local files now, Redis/PostgreSQL later.

    ``save`` must be atomic per partition: after a crash, ``load`` returns
    either the previous checkpoint or the new one, whole.
    """

    @abstractmethod
    def save(
        self,
        partition: str,
        state: dict[str, np.ndarray],
        offset: int,
        meta: dict[str, Any] | None = None,
    ) -> Checkpoint:
        """Atomically replace ``partition``'s checkpoint with (``state``, ``offset``).

        Call only after every sink acknowledged the outputs up to ``offset``.
        """

    @abstractmethod
    def load(self, partition: str) -> Checkpoint | None:
        """The latest good checkpoint of ``partition``, or None if none was ever saved."""

    @abstractmethod
    def partitions(self) -> list[str]:
        """Names of the partitions that have a checkpoint, sorted."""

    @abstractmethod
    def delete(self, partition: str) -> None:
        """Forget ``partition``'s checkpoints (a no-op if there are none)."""


# --- the one on-disk/on-wire format every store uses ---------------------------


def pack_checkpoint(partition: str, state: dict[str, np.ndarray], offset: int, meta: dict[str, Any] | None) -> tuple[bytes, float]:
    """The checkpoint as one ``.npz`` blob (no pickle) and its creation time."""
    arrays, created_at = checkpoint_arrays(partition, state, offset, meta)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue(), created_at


def checkpoint_arrays(partition: str, state: dict[str, np.ndarray], offset: int,
                      meta: dict[str, Any] | None) -> tuple[dict[str, np.ndarray], float]:
    """The arrays of the ``.npz`` (validated: raises before anything is written) and the creation time.

    ``np.savez(file, **arrays)`` writes them; a store that has a file writes them to it directly,
    which spares two in-memory copies of the whole state (they held the GIL for tens of
    milliseconds, stalling the scoring thread while a background checkpoint was written)."""
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
    return arrays, created_at


def unpack_checkpoint(blob: bytes, where: str) -> Checkpoint:
    """The inverse of :func:`pack_checkpoint`; raises :class:`CheckpointError` on a damaged blob."""
    try:
        with np.load(io.BytesIO(blob), allow_pickle=False) as npz:
            header = json.loads(str(npz["meta"][()]))
            if header.get("format") != FORMAT_VERSION:
                raise ValueError(f"checkpoint format {header.get('format')!r}, expected {FORMAT_VERSION}")
            state = {key: npz[f"s{i}"] for i, key in enumerate(header["keys"])}
    except (OSError, EOFError, ValueError, KeyError, zipfile.BadZipFile, json.JSONDecodeError) as error:
        raise CheckpointError(f"checkpoint at {where} is unreadable: {type(error).__name__}: {error}") from None
    return Checkpoint(header["partition"], int(header["offset"]), state, header["meta"], float(header["created_at"]))


