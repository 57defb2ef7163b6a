"""The HTTP service's intake: every request journaled before it is answered, folded in in journal order.

A request that carries events becomes one journal entry (:mod:`tocsin.sources.journal`)
with a seq, durable before the client hears back; the seq is the position of
the service's stream, so the driver core's invariant (:mod:`tocsin.engine.core`)
holds as for any source. Entries wait here, in seq order, until they are folded
in through the core: by the queue thread, or by a ``POST /v1/score`` request,
which folds everything queued before its own entry and then its own, alone, so
its answer is exactly its events' decisions. Folding happens only under the
core's lock, so whoever folds, the order is the journal's.

A request's events get the positions ``seq << RECORD_BITS | index``, so their
dead letters (and derived ids, with ``schema.id_field: null``) are the same keys
when the journal is replayed after a crash.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from tocsin.engine.core import DriverCore, Stream
from tocsin.engine.pipeline import ScoredBatch
from tocsin.sources.base import SourceBatch
from tocsin.sources.journal import Journal, JournalEntry

log = logging.getLogger("tocsin.api")

#: an event's position is ``seq << RECORD_BITS | index in its request`` (requests hold ≤ 10,000 events)
RECORD_BITS = 20


class QueueFull(RuntimeError):
    """``POST /v1/events`` would exceed the queue bound; the client should retry later."""


class Unavailable(RuntimeError):
    """Events cannot be processed now (a sink, e.g. the store, is down); nothing new is accepted until
    it recovers, so no answer promises work that is not being done."""


@dataclass
class Entry:
    """A journal entry waiting to be folded in; ``done`` is set once its outputs are stored."""

    seq: int
    records: list[dict[str, Any]]
    received: float
    #: "events" (queued) or "score" (a request waiting for its answer)
    path: str
    done: threading.Event | None = None
    scored: ScoredBatch | None = None


class MemoryJournal:
    """A journal that forgets on restart: for a service without a checkpoint store (tests, throwaway
    runs). Same numbering as :class:`~tocsin.sources.journal.Journal`; entries are not kept (nothing
    replays them), so appends cost nothing."""

    def __init__(self) -> None:
        self._seq = 0
        self._lock = threading.Lock()

    def append(self, records: list[dict[str, Any]]) -> int:
        with self._lock:
            self._seq += 1
            return self._seq

    def read(self, after: int, max_events: int | None = None) -> list[JournalEntry]:
        return []

    def truncate(self, up_to: int) -> int:
        with self._lock:
            self._seq = max(self._seq, up_to)
        return 0

    def close(self) -> None:
        pass

    def __repr__(self) -> str:
        return "MemoryJournal()"


class Inbox:
    """The journal, the entries waiting to be folded in, and the thread that folds them."""

    def __init__(
        self,
        core: DriverCore,
        stream: Callable[[], Stream],
        journal: Journal | MemoryJournal,
        *,
        batch_size: int,
        max_wait: float,
        max_events: int,
        every_pass: Callable[[], None] = lambda: None,
        unavailable: Callable[[], str | None] = lambda: None,
        backoff: tuple[float, float] = (0.2, 5.0),
    ) -> None:
        self.core = core
        self.stream = stream
        self.journal = journal
        self.batch_size = batch_size
        self.max_wait = max_wait
        #: events waiting past which ``POST /v1/events`` answers 503
        self.max_events = max_events
        #: called by the queue thread after each pass (the service checkpoints from there)
        self.every_pass = every_pass
        #: why events cannot be accepted now (a sink down), or None
        self.unavailable = unavailable
        #: first and longest pause of the queue thread between attempts while a sink is down
        self.backoff = backoff
        self._queue: deque[Entry] = deque()
        self._queued_events = 0
        self._wakeup = threading.Condition()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._stop_deadline = float("inf")
        self._ticked = 0.0
        self.error: BaseException | None = None

    @property
    def depth(self) -> int:
        """Events journaled and not yet folded in."""
        return self._queued_events

    @property
    def stopped_by_error(self) -> bool:
        return self._thread is not None and not self._thread.is_alive() and self.error is not None

    # --- in -------------------------------------------------------------------------------

    def replay_after(self, position: int) -> list[JournalEntry]:
        """Queue the journal's entries after ``position`` (a checkpoint's seq) and return them. A journal
        behind that position (new, or its newest appends lost with the machine's power) numbers new
        entries after it, or the next replay would skip them."""
        self.journal.truncate(position)
        entries = self.journal.read(after=position)
        with self._wakeup:
            for entry in entries:
                self._queue.append(Entry(entry.seq, entry.records, time.monotonic(), "events"))
                self._queued_events += len(entry.records)
        return entries

    def append(self, records: list[dict[str, Any]], path: str) -> Entry:
        """Journal ``records`` (durable once this returns) and queue them; ``path`` "events" is bounded
        by ``max_events`` (:class:`QueueFull`), "score" is not (its caller waits for it). While a sink
        is down nothing is journaled (:class:`Unavailable`)."""
        reason = self.unavailable()
        if reason is not None:
            raise Unavailable(reason)
        with self._wakeup:
            if path == "events" and self._queued_events + len(records) > self.max_events:
                raise QueueFull(f"the event queue holds {self._queued_events} of {self.max_events} events; retry later")
            seq = self.journal.append(records)  # durable before anyone is told it was accepted
            entry = Entry(seq, records, time.monotonic(), path, threading.Event() if path == "score" else None)
            self._queue.append(entry)
            self._queued_events += len(records)
            self._wakeup.notify()
            return entry

    def fold_until(self, entry: Entry) -> ScoredBatch:
        """Fold in everything queued up to and including ``entry`` (a "score" entry); its decisions."""
        try:
            with self.core.lock:
                while not entry.done.is_set() and self.fold_next():
                    pass
        except Unavailable:
            pass  # an earlier entry's outputs could not be stored; this one waits in the journal behind it
        if entry.done.is_set() and entry.scored is not None:
            return entry.scored
        raise Unavailable(f"the events are journaled (entry {entry.seq}) but their outputs could not be stored yet: "
                          f"{self.unavailable() or 'see the service log'}; they are stored when the store recovers, "
                          "do not send them again")

    # --- folding ----------------------------------------------------------------------------

    def fold_next(self) -> bool:
        """Under the core's lock: fold the next group of entries in (consecutive queued ones up to a
        batch, or one scoring request alone). False when nothing waits. Outputs a failed store left
        waiting are stored first (if that fails, :class:`Unavailable`, and nothing is taken off the queue)."""
        if self.core.unacknowledged:
            self.core.acknowledge_pending()
        with self._wakeup:
            if not self._queue:
                return False
            group = [self._queue.popleft()]
            n = len(group[0].records)
            if group[0].path == "events":
                while self._queue and self._queue[0].path == "events" and n + len(self._queue[0].records) <= self.batch_size:
                    n += len(self._queue[0].records)
                    group.append(self._queue.popleft())
            self._queued_events -= n
        records = group[0].records if len(group) == 1 else [r for e in group for r in e.records]
        positions = np.concatenate([(e.seq << RECORD_BITS) + np.arange(len(e.records), dtype=np.int64) for e in group])
        raw = SourceBatch(positions=positions, next_position=group[-1].seq + 1, records=records)
        processed = []
        try:
            processed = self.core.process([(self.stream(), raw)], path=group[0].path, received=group[0].received)
        finally:  # a waiting request learns its fate either way (no scored batch: the pipeline failed)
            for entry in group:
                if entry.done is not None:
                    entry.scored = processed[0].scored if processed else None
                    entry.done.set()
        return True

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="tocsin-api-queue", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Fold in what is queued (for up to ``timeout`` seconds while a sink is down), then stop the
        thread; what is left stays in the journal for the next start, and the log says so."""
        self._stop.set()
        self._stop_deadline = time.monotonic() + timeout
        with self._wakeup:
            self._wakeup.notify_all()
        if self._thread is not None:
            self._thread.join(timeout + 5)
            self._thread = None
        left = self._queued_events + sum(len(item.raw) for item in self.core.pending_batches)
        if left:
            log.warning("api: stopping with %d events journaled but not stored (%s); they are processed at the next start",
                        left, self.unavailable() or "the queue did not drain in time")

    def _run(self) -> None:
        pause = self.backoff[0]
        try:
            while True:
                with self._wakeup:
                    idle = not self._queue and not self.core.unacknowledged
                    if idle and self._stop.is_set():
                        break
                    if idle:
                        self._wakeup.wait(self.max_wait)
                if self._stop.is_set() and time.monotonic() > self._stop_deadline:
                    break
                try:
                    with self.core.lock:
                        if self.core.unacknowledged:
                            self.core.acknowledge_pending()
                        elif self._queue:
                            self.fold_next()
                        elif time.monotonic() - self._ticked >= 1.0:  # idle: silences, a profiled table's buckets fall due
                            self._ticked = time.monotonic()
                            self.core.tick([self.stream()], path="api")
                    pause = self.backoff[0]
                except Unavailable as error:  # a sink is down: wait, then try the same outputs again
                    log.warning("api: outputs not stored (%s); retrying in %.1f s", error, pause)
                    self._stop.wait(pause)
                    pause = min(pause * 2, self.backoff[1])
                    continue
                self.every_pass()
        except BaseException as error:  # noqa: BLE001 - reported by /health, then re-raised for the log
            self.error = error
            log.exception("the event queue thread stopped")
            raise

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Block until the queue is drained (tests, shutdown)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self._queue:
                with self.core.lock:  # the last group may still be folding in: taking the lock waits for it
                    return True
            time.sleep(0.01)
        return False
