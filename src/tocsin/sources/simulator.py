"""The simulator as a source: labelled synthetic events, optionally paced to a rate."""

from __future__ import annotations

import time
from collections.abc import Iterator

import numpy as np

from tocsin.batch import EventBatch
from tocsin.sources.base import Source, SourceBatch
from tocsin.spec import SimulatorSource as SimulatorSpec


class SimulatorSource(Source):
    """Events from a deterministic simulator (``spec.scenario``: card transactions, host metrics, request logs or
    sensor readings), already columnar.

    ``rate`` (events/s, 0 = as fast as possible) paces the stream like a live
    feed; ``max_events`` ends it. Positions are the simulator's global event
    indices, so a resumed run regenerates exactly the events it had not seen.
    """

    def __init__(self, spec: SimulatorSpec, rate: float = 0.0, max_events: int | None = None) -> None:
        from tocsin.simulate import simulator_class

        self.simulator = simulator_class(spec.scenario).from_spec(spec)
        self.rate = rate
        self.max_events = max_events
        self.name = f"simulator:{spec.scenario}:{spec.seed}"
        self._position = 0
        self._pending: EventBatch | None = None
        self._stream: Iterator[EventBatch] | None = None
        self._started = time.monotonic()
        self._emitted = 0

    def seek(self, position: int) -> None:
        self._position = int(position)
        self._stream = None
        self._pending = None

    def read(self, max_records: int, timeout: float = 0.0) -> SourceBatch | None:
        if self.max_events is not None:
            max_records = min(max_records, self.max_events - self._position)
            if max_records <= 0:
                return None
        if self.rate > 0:
            max_records = self._paced(max_records, timeout)
            if max_records == 0:
                return SourceBatch(positions=np.empty(0, dtype=np.int64), next_position=self._position)
        events = self._take(max_records)
        self._position = int(events.positions[-1]) + 1
        self._emitted += len(events)
        return SourceBatch(positions=events.positions, next_position=self._position, events=events)

    def _paced(self, max_records: int, timeout: float) -> int:
        """How many events the rate allows now, sleeping up to ``timeout`` for at least one."""
        deadline = time.monotonic() + timeout
        while True:
            allowed = int((time.monotonic() - self._started) * self.rate) - self._emitted
            if allowed > 0 or time.monotonic() >= deadline:
                return max(0, min(max_records, allowed))
            time.sleep(min(0.01, max(0.0, deadline - time.monotonic())))

    def _take(self, n: int) -> EventBatch:
        if self._stream is None:
            self._stream = self.simulator.batches(batch_size=max(n, 1), start_position=self._position)
        parts, have = [], 0
        while have < n:
            chunk = self._pending if self._pending is not None else next(self._stream)
            self._pending = None
            need = n - have
            if len(chunk) > need:
                self._pending = chunk.take(slice(need, None))
                chunk = chunk.take(slice(0, need))
            parts.append(chunk)
            have += len(chunk)
        return parts[0] if len(parts) == 1 else EventBatch.concat(parts)
