"""The sink contract: where a batch's outputs go, behind one small protocol the driver core calls.

A sink is handed every processed batch of a step (:meth:`Sink.send`), then asked
to make all of them durable (:meth:`Sink.flush`), which returns only once they
are acknowledged — the store's transaction committed, the producer's records
acknowledged by the broker. Only then does the core move the streams' positions
on, which is what lets a checkpoint trust that everything before its position
has landed (see :mod:`tocsin.engine.core`). A sink whose failure must not stop
the stream (a cache that is only a view) swallows its errors in ``flush`` and
reports them through health instead.

The sinks: :mod:`~tocsin.sinks.store` (anomalies, dead letters, scored events,
alerts and their outbox, in one transaction), :mod:`~tocsin.sinks.kafka` (alert
changes, dead letters and scored events on topics, replay-safe) and
:mod:`~tocsin.sinks.cache` (the Redis entity cache).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tocsin.engine.outputs import BatchOutputs
from tocsin.engine.pipeline import ScoredBatch
from tocsin.sources.base import SourceBatch

if TYPE_CHECKING:
    from tocsin.engine.core import Stream


@dataclass
class ProcessedBatch:
    """One stream's batch after the pipeline: its input, decisions and outputs, not yet acknowledged."""

    stream: Stream
    raw: SourceBatch
    scored: ScoredBatch
    outputs: BatchOutputs
    #: when its first record was received (``time.monotonic()``), or None
    received: float | None = None


class Sink(ABC):
    """Receives processed batches and makes them durable on :meth:`flush`."""

    #: the health component a failure of this sink marks down ("store", "kafka", "cache")
    component: str = "store"

    @abstractmethod
    def send(self, item: ProcessedBatch) -> None:
        """Take (buffer or start sending) one batch's outputs; cheap, no waiting."""

    @abstractmethod
    def flush(self) -> None:
        """Return once every output sent so far is acknowledged; raise to have the core retry it.

        A retried flush must make the same outputs durable, so keep them until it succeeds."""

    def open(self, stream: Stream, meta: dict[str, Any]) -> None:
        """A stream starts (or resumes from a checkpoint whose metadata is ``meta``)."""

    def close_stream(self, stream: Stream) -> None:
        """A stream ends here (revoked): forget what was kept for it."""

    def checkpoint_meta(self, stream: Stream) -> dict[str, Any]:
        """Facts this sink needs saved with ``stream``'s checkpoint (called between batches)."""
        return {}

    def close(self) -> None:
        """Release connections; the core flushed already."""
