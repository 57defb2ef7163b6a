"""Durability invariant: a request is answered only after it is a numbered journal entry, and a number is never reused.

The HTTP service turns every accepted request (``POST /v1/events``, ``POST
/v1/score``) into one entry of this append-only journal. An entry's sequence
number ``seq`` is the service's source position, so the ordering invariant of
:mod:`tocsin.checkpoint.base` applies to it as to a Kafka offset. For every
entry:

1. **Durable before the answer.** :meth:`Journal.append` returns only after
   SQLite committed the entry to its write-ahead log; the service answers the
   client after that. A crash of the process afterwards (``kill -9``, the OOM
   killer) cannot lose the entry.
2. **Numbered once, in order.** Seqs are 1, 2, 3… in the order appends
   committed, strictly increasing and never handed out twice: not after
   :meth:`~Journal.truncate`, not after a reopen (a high-water mark survives
   the entries it counted).
3. **Dropped only behind a checkpoint.** ``truncate(s)`` is the commit of this
   source: call it only after a checkpoint holding (state, ``s``) is saved.
   On restart the service loads the checkpoint and replays
   ``read(after=s)``.

What breaks without it:

- **Answer before durable** (what the in-memory queue did): an event the
  client was told is accepted (202) lives only in memory; a crash loses it and
  nobody retries it.
- **A reused seq**: an entry numbered at or below a checkpoint's seq is
  skipped by the replay ``read(after=checkpoint seq)``, so it is lost although
  it is on disk. Numbering that restarted at 1 once every entry was truncated
  would do exactly that; so would a power loss that took the newest entries of
  a ``synchronous="normal"`` journal while the (fsynced) checkpoint remembers
  their seqs. Calling ``truncate(checkpoint seq)`` at start-up covers the
  second case: numbering then continues after the checkpoint's seq even if
  the journal has not got that far.
- **Truncating ahead of the checkpoint**: entries folded into no saved state
  are deleted; a crash before the next checkpoint loses them.
- **Two processes on one journal** (two service workers given the same path):
  both would fold every entry into their own state (each event counted twice
  across the two) and truncate entries the other had not folded yet. The
  journal holds an exclusive lock on its file while it is open, so a second
  opener fails with :class:`JournalLocked` instead.

Good at: a durable inbox for one service process with no server to run
(standard library ``sqlite3`` and msgspec). Measured on the development
machine (2 shared cores, a virtual disk, ``synchronous="normal"``, records of
8 card-transaction fields): a 1-event append costs 10-15 µs on average
(60,000-85,000 appends/s, from 1 thread or 8; median 6-10 µs, 99th
percentile ~30 µs from one thread), a 1,000-event append 0.6-0.9 ms at the
median and 1.0-1.6 ms on average (600,000-950,000 events/s; about a third of
it the JSON encoding, outside the lock). Reading back in slices of 5,000 events
gives 250,000 events/s from 1-event entries and 0.6-1.2 million events/s from
1,000-event ones, most of it msgspec building the dicts. Every ~4 MB of
appends, the append that fills SQLite's log also copies it into the database
file and fsyncs both (a few ms, up to ~20 ms on this disk): that is the 99th
percentile of large appends.

Where it fails:

- **One machine.** The journal is a local file: losing the disk loses the
  entries not yet folded into a checkpoint. There is no replication; for that,
  put the events on Kafka and run the Kafka worker.
- **One process.** The process that opened the journal is the only one that
  can append to it or read it (the exclusive lock above); ``sqlite3 FILE`` from
  a shell waits until it is closed. Threads of that process share it freely.
- **Power loss.** With ``synchronous="normal"`` (the default) a commit is
  written to the operating system, not fsynced: it survives a killed process,
  but a power failure or kernel crash may lose the last appends (never
  corrupting the file). ``synchronous="full"`` fsyncs every append: a disk
  flush each (~3 ms, 340 appends/s from one thread on the development disk;
  well under 1 ms on a good SSD).
- **Size.** Truncated entries free their pages for later appends but the file
  does not shrink: it stays as large as the largest backlog it ever held.
- **JSON round trip.** Entries come back as msgspec decodes the stored JSON:
  NaN and infinities as ``None`` (the decoder then dead-letters such a
  record as ``missing_field`` instead of ``not_finite``), tuples and sets as
  lists, bytes as base64 strings, datetimes as ISO strings. HTTP bodies are
  JSON already, so their records come back unchanged.

Cost: per append, one msgspec encoding outside the lock and one SQLite
commit (one append to the write-ahead log, no fsync with ``normal``) under it;
every byte is written twice (log, then database file at SQLite's automatic
checkpoint); a read decodes the JSON again.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

import msgspec

log = logging.getLogger(__name__)

#: ``PRAGMA application_id`` of a journal file ("tcsj"), so another SQLite database is never mistaken for one
APPLICATION_ID = 0x7463736A
#: ``PRAGMA user_version``: the journal's layout; bump on incompatible changes
FORMAT_VERSION = 1
#: the ``synchronous`` settings a journal accepts; ``off`` would not survive a crash of the operating system intact
SYNCHRONOUS = ("normal", "full", "extra")

# A read holds the lock for at most this many entries or events at a time, so appends wait
# for a slice of a long replay, not for all of it.
_READ_SLICE_ENTRIES = 512
_READ_SLICE_EVENTS = 8192

_SCHEMA = (
    "CREATE TABLE journal (seq INTEGER PRIMARY KEY, received REAL NOT NULL, n INTEGER NOT NULL, body BLOB NOT NULL)",
    # the high-water mark: the highest seq ever handed out or truncated past, written only by truncate
    # (AUTOINCREMENT would keep it too, but rewrites its counter page on every append: 16 µs an append instead of 9)
    "CREATE TABLE journal_meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL)",
)
# what msgspec raises for a value JSON cannot carry
_ENCODE_ERRORS = (TypeError, ValueError, OverflowError, RecursionError, msgspec.MsgspecError)
_INSERT = "INSERT INTO journal (seq, received, n, body) VALUES (?, ?, ?, ?)"
_READ = "SELECT seq, received, n, body FROM journal WHERE seq > ? ORDER BY seq"
_RAISE_HIGH_WATER = ("INSERT INTO journal_meta (key, value) VALUES ('high_water', ?) "
                     "ON CONFLICT (key) DO UPDATE SET value = max(value, excluded.value)")


class JournalError(RuntimeError):
    """The file cannot be used as a journal (another kind of database, a newer layout)."""


class JournalLocked(JournalError):
    """Another process (or another :class:`Journal` of this one) has the journal open."""


@dataclass(frozen=True)
class JournalEntry:
    """One accepted request: its sequence number, when it was appended (epoch seconds) and its records."""

    seq: int
    received: float
    records: list[dict[str, Any]]


class Journal:
    """An append-only, numbered, crash-safe log of requests in one SQLite file (WAL mode).

    Invariant: an :meth:`append` that returned is durable against a crash of
    this process, and its seq is strictly greater than every seq handed out
    before, by this process or an earlier one, even after :meth:`truncate` and
    a reopen. Thread-safe: request threads append while one thread reads.
    Entries become visible in seq order (a seq is handed out and committed
    under one lock), so a reader that moves ``after`` to the last seq it got
    never steps over an entry still being written.

    One connection serves all threads behind one lock. Measured against a
    connection per thread: 9-11 µs per 1-event append with the lock (1 or 8
    threads) against 17-19 µs, because SQLite lets one writer in at a time
    anyway and separate connections also pay for the shared-memory index
    (12-16 µs with one connection but without the exclusive lock) and the
    busy-wait. The connection holds SQLite's exclusive lock on the file,
    which is also what keeps a second process out.

    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as tmp, Journal(Path(tmp) / "inbox.db") as journal:
    ...     journal.append([{"id": "tx-1", "amount": 42.5}]), journal.append([{"id": "tx-2"}, {"id": "tx-3"}])
    ...     [(entry.seq, len(entry.records)) for entry in journal.read(after=0)]
    ...     journal.truncate(1), journal.last_seq
    (1, 2)
    [(1, 1), (2, 2)]
    (1, 2)
    """

    def __init__(self, path: Path | str, *, synchronous: str = "normal", lock_timeout: float = 5.0) -> None:
        """Open (creating it and its directory if missing) the journal at ``path``.

        ``synchronous`` is SQLite's setting: ``"normal"`` survives a killed
        process, ``"full"`` also a power loss, at an fsync per append.
        ``lock_timeout`` is how long to wait for another process that has the
        journal open (one that is shutting down) before :class:`JournalLocked`.
        """
        mode = str(synchronous).lower()
        if mode not in SYNCHRONOUS:
            raise ValueError(f"synchronous: expected one of {', '.join(SYNCHRONOUS)}, got {synchronous!r}")
        self.path = Path(path)
        self.synchronous = mode
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._encoder = msgspec.json.Encoder()
        self._decoder = msgspec.json.Decoder()
        db = sqlite3.connect(self.path, timeout=lock_timeout, isolation_level=None, check_same_thread=False)
        try:
            self._next_seq = self._prepare(db, mode)
        except sqlite3.OperationalError as error:
            db.close()
            if getattr(error, "sqlite_errorcode", None) == sqlite3.SQLITE_BUSY or "locked" in str(error):
                raise JournalLocked(f"journal {self.path} is open in another process (waited {lock_timeout:g} s); "
                                    "one process writes a journal") from None
            raise JournalError(f"journal {self.path} cannot be opened: {error}") from error
        except BaseException:
            db.close()
            raise
        self._db: sqlite3.Connection | None = db

    def _prepare(self, db: sqlite3.Connection, mode: str) -> int:
        """Lock the file, check or create the layout; the next seq to hand out."""
        db.execute("PRAGMA locking_mode = EXCLUSIVE")  # before WAL: no shared-memory index, and no second opener
        journal_mode = db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(journal_mode).lower() != "wal":
            raise JournalError(f"journal {self.path}: SQLite refused WAL mode (got {journal_mode!r})")
        db.execute(f"PRAGMA synchronous = {mode.upper()}")
        db.execute("BEGIN IMMEDIATE")  # takes the write lock, which exclusive mode keeps until close
        try:
            application_id = db.execute("PRAGMA application_id").fetchone()[0]
            tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            if not tables and application_id == 0:
                for statement in _SCHEMA:
                    db.execute(statement)
                db.execute(f"PRAGMA application_id = {APPLICATION_ID}")
                db.execute(f"PRAGMA user_version = {FORMAT_VERSION}")
            elif application_id != APPLICATION_ID:
                raise JournalError(f"{self.path} is an SQLite database but not a tocsin journal")
            else:
                version = db.execute("PRAGMA user_version").fetchone()[0]
                if version != FORMAT_VERSION:
                    raise JournalError(f"journal {self.path} has layout version {version}; this tocsin reads {FORMAT_VERSION}")
            newest = db.execute("SELECT coalesce(max(seq), 0) FROM journal").fetchone()[0]
            row = db.execute("SELECT value FROM journal_meta WHERE key = 'high_water'").fetchone()
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return max(newest, row[0] if row else 0) + 1

    def __repr__(self) -> str:
        return f"Journal({str(self.path)!r}, synchronous={self.synchronous!r})"

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _connection(self) -> sqlite3.Connection:
        """The open connection; call with the lock held."""
        if self._db is None:
            raise ValueError(f"journal {self.path} is closed")
        return self._db

    # --- write ----------------------------------------------------------------

    def append(self, records: list[dict[str, Any]]) -> int:
        """Store ``records`` (one request) as one entry and return its seq, once it is durable.

        Raises ValueError, writing nothing, when ``records`` is empty or holds a
        value JSON cannot carry (an arbitrary object, a lone surrogate).
        """
        body = self._encode(records)
        with self._lock:
            db = self._connection()
            seq = self._next_seq
            db.execute(_INSERT, (seq, time.time(), len(records), body))  # autocommit: durable when it returns
            self._next_seq = seq + 1
        return seq

    def _encode(self, records: list[dict[str, Any]]) -> bytes:
        if not isinstance(records, list):
            raise TypeError(f"records: expected a list of dicts, got {type(records).__name__}")
        if not records:
            raise ValueError("records: an entry holds at least one record, got an empty list")
        try:
            return self._encoder.encode(records)
        except _ENCODE_ERRORS as error:  # the slow path names the record at fault
            where = next((f"record {i} of {len(records)}" for i, record in enumerate(records) if not self._encodes(record)),
                         f"the {len(records)} records")
            raise ValueError(f"{where} cannot be journaled as JSON: {type(error).__name__}: {error}") from None

    def _encodes(self, record: Any) -> bool:
        try:
            self._encoder.encode(record)
        except _ENCODE_ERRORS:
            return False
        return True

    def truncate(self, up_to: int) -> int:
        """Drop the entries with seq <= ``up_to`` and return how many were dropped.

        Call only once a checkpoint holding (state, ``up_to``) is saved. Later
        appends get seqs above ``up_to`` even when the journal never reached it
        (a checkpoint that outlived appends a power loss took): the replay after
        that checkpoint then still sees them.
        """
        up_to = int(up_to)
        with self._lock:
            db = self._connection()
            newest = self._next_seq - 1
            high_water = max(newest, up_to)
            db.execute("BEGIN IMMEDIATE")
            try:
                db.execute(_RAISE_HIGH_WATER, (high_water,))
                dropped = db.execute("DELETE FROM journal WHERE seq <= ?", (up_to,)).rowcount
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
            self._next_seq = high_water + 1
        if up_to > newest:
            log.warning("journal %s truncated to seq %d past its newest entry %d: numbering continues after %d",
                        self.path, up_to, newest, up_to)
        return dropped

    # --- read -----------------------------------------------------------------

    def read(self, after: int, max_events: int | None = None) -> list[JournalEntry]:
        """The entries with seq > ``after``, in seq order, holding at most ``max_events`` records
        together (all of them when None) but always at least one entry when there is one,
        however many records it holds."""
        if max_events is not None and max_events < 1:
            raise ValueError(f"max_events: expected a positive number or None, got {max_events!r}")
        rows: list[tuple[int, float, int, bytes]] = []
        events, position, done = 0, int(after), False
        while not done:
            with self._lock:  # one slice at a time, so appends interleave with a long replay
                cursor = self._connection().execute(_READ, (position,))
                try:
                    slice_events = 0
                    for taken, row in enumerate(cursor, start=1):
                        n = row[2]
                        if max_events is not None and rows and events + n > max_events:
                            done = True
                            break
                        rows.append(row)
                        events += n
                        slice_events += n
                        if max_events is not None and events >= max_events:
                            done = True
                            break
                        if taken >= _READ_SLICE_ENTRIES or slice_events >= _READ_SLICE_EVENTS:
                            break
                    else:
                        done = True
                finally:
                    cursor.close()  # ends the read transaction, so SQLite's checkpoints can complete
            if rows:
                position = rows[-1][0]
        return [JournalEntry(seq, received, self._decode(seq, body)) for seq, received, _n, body in rows]

    def _decode(self, seq: int, body: bytes) -> list[dict[str, Any]]:
        try:
            return self._decoder.decode(body)
        except msgspec.DecodeError as error:  # append stored valid JSON: only a damaged file gets here
            raise JournalError(f"journal {self.path}: entry {seq} is unreadable: {error}") from None

    def events_after(self, after: int) -> int:
        """How many records the entries with seq > ``after`` hold (the backlog a replay will fold in)."""
        with self._lock:
            return int(self._connection().execute(
                "SELECT coalesce(sum(n), 0) FROM journal WHERE seq > ?", (int(after),)).fetchone()[0])

    @property
    def last_seq(self) -> int:
        """The highest seq handed out (or truncated past); 0 for a journal never written."""
        with self._lock:
            return self._next_seq - 1

    def close(self) -> None:
        """Close the file and release its lock; later calls raise ValueError. Closing twice is fine."""
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None
