"""The journal: numbered, ordered, durable appends that survive kill -9, truncate and reopen."""

from __future__ import annotations

import inspect
import logging
import os
import random
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from contextlib import closing
from pathlib import Path

import pytest

from tocsin.sources import journal as journal_module
from tocsin.sources.journal import Journal, JournalError, JournalLocked


def transaction_records(i: int) -> list[dict]:
    """Request ``i``: card transactions, one record most of the time, a few hundred every 50th
    (so a kill also lands in the middle of writing a large entry)."""
    size = 1 + (i % 7) * 100 if i % 50 == 0 else 1
    return [
        {
            "id": f"tx-{i}-{k}",
            "card": f"card{(i * 31 + k) % 1000:04d}",
            "ts": 1767225600.0 + i + k / 1000,
            "amount": ((i * 7919 + k * 104729) % 100000) / 100,
            "merchant": f"m{(i + k) % 97:03d}",
            "country": ("FR", "DE", "US", "BR")[(i + k) % 4],
            "channel": "pos" if k % 2 else "web",
            "is_fraud": (i + k) % 53 == 0,
        }
        for k in range(size)
    ]


def request_number(records: list[dict]) -> int:
    return int(records[0]["id"].split("-")[1])


@pytest.fixture
def path(tmp_path):
    return tmp_path / "inbox" / "journal.db"


def test_appends_are_numbered_from_one_and_read_back_in_order(path):
    before = time.time()
    with Journal(path) as journal:
        seqs = [journal.append(transaction_records(i)) for i in range(1, 4)]
        entries = journal.read(after=0)
        assert seqs == [1, 2, 3]
        assert [e.seq for e in entries] == [1, 2, 3]
        assert [e.records for e in entries] == [transaction_records(i) for i in range(1, 4)]
        assert all(before <= e.received <= time.time() for e in entries)
        assert [e.seq for e in journal.read(after=1)] == [2, 3]
        assert journal.read(after=3) == []
        assert journal.last_seq == 3


def test_read_honours_max_events_but_returns_at_least_one_entry(path):
    with Journal(path) as journal:
        for size in (2, 3, 1, 5):
            journal.append([{"id": f"e{k}"} for k in range(size)])
        assert [e.seq for e in journal.read(0, max_events=5)] == [1, 2]
        assert [e.seq for e in journal.read(0, max_events=4)] == [1]
        assert [e.seq for e in journal.read(0, max_events=1)] == [1]  # 2 events, alone over the budget
        assert [e.seq for e in journal.read(3, max_events=2)] == [4]
        assert [e.seq for e in journal.read(0, max_events=100)] == [1, 2, 3, 4]
        with pytest.raises(ValueError, match="max_events"):
            journal.read(0, max_events=0)


def test_long_reads_are_sliced_without_losing_or_reordering_entries(path):
    many = 3 * journal_module._READ_SLICE_ENTRIES + 7
    with Journal(path) as journal:
        for i in range(many):
            journal.append([{"id": i}])
        assert [e.records[0]["id"] for e in journal.read(0)] == list(range(many))
        assert [e.seq for e in journal.read(0, max_events=1000)] == list(range(1, 1001))
        assert journal.events_after(0) == many
        assert journal.events_after(many - 10) == 10


def test_an_empty_journal(path):
    with Journal(path) as journal:
        assert journal.last_seq == 0
        assert journal.read(0) == []
        assert journal.events_after(0) == 0
        assert journal.truncate(0) == 0
    with Journal(path) as journal:
        assert journal.last_seq == 0
        assert journal.append([{"id": "first"}]) == 1


def test_numbering_never_restarts_after_truncate_and_reopen(path):
    with Journal(path) as journal:
        for i in range(5):
            journal.append([{"id": i}])
        assert journal.truncate(3) == 3
        assert [e.seq for e in journal.read(0)] == [4, 5]
    with Journal(path) as journal:  # reopened with entries left
        assert journal.last_seq == 5
        assert journal.truncate(5) == 2
        assert journal.read(0) == []
    with Journal(path) as journal:  # reopened empty: the high-water mark, not the entries, says where it was
        assert journal.last_seq == 5
        assert journal.append([{"id": "next"}]) == 6
        assert [e.seq for e in journal.read(0)] == [6]


def test_truncating_past_the_newest_entry_moves_numbering_past_it(path, caplog):
    """A checkpoint at seq 10 over a journal that reaches 2 (a power loss took 3..10): new entries must
    be numbered above 10, or the replay after that checkpoint would skip them."""
    with Journal(path) as journal:
        journal.append([{"id": 1}])
        journal.append([{"id": 2}])
        with caplog.at_level(logging.WARNING, logger=journal_module.__name__):
            assert journal.truncate(10) == 2
        assert "past its newest entry" in caplog.text
        assert journal.last_seq == 10
        assert journal.append([{"id": 3}]) == 11
    with Journal(path) as journal:
        assert journal.append([{"id": 4}]) == 12
        assert [e.seq for e in journal.read(10)] == [11, 12]


def test_concurrent_appends_get_unique_consecutive_seqs_and_become_visible_in_order(path):
    threads, per_thread = 8, 250
    total = threads * per_thread
    with Journal(path) as journal:
        appended: list[tuple[int, int, int]] = []
        seen: list[int] = []
        start = threading.Barrier(threads + 2, timeout=30)  # the appenders, the reader and this thread
        failures: list[BaseException] = []

        def append(t: int) -> None:
            start.wait()
            mine = [(journal.append([{"thread": t, "i": i}]), t, i) for i in range(per_thread)]
            appended.extend(mine)

        def fold() -> None:  # the service's reader: advances to the last seq it got, so it must never see a gap
            try:
                start.wait()
                after, deadline = 0, time.monotonic() + 60
                while after < total and time.monotonic() < deadline:
                    for entry in journal.read(after, max_events=64):
                        assert entry.seq == after + 1, f"entry {entry.seq} became visible before {after + 1}"
                        after = entry.seq
                        seen.append(entry.seq)
            except BaseException as error:  # noqa: BLE001 - reported by the main thread
                failures.append(error)

        workers = [threading.Thread(target=append, args=(t,)) for t in range(threads)]
        reader = threading.Thread(target=fold)
        for worker in [*workers, reader]:
            worker.start()
        start.wait()
        for worker in [*workers, reader]:
            worker.join(timeout=60)
        assert not failures, failures
        assert sorted(seq for seq, _, _ in appended) == list(range(1, total + 1))
        assert seen == list(range(1, total + 1))
        by_seq = {entry.seq: entry.records for entry in journal.read(0)}
        assert by_seq == {seq: [{"thread": t, "i": i}] for seq, t, i in appended}
        for t in range(threads):  # each thread's appends are numbered in the order it made them
            own = [seq for seq, thread, _ in sorted(appended) if thread == t]
            assert [by_seq[seq][0]["i"] for seq in own] == list(range(per_thread))


def test_unencodable_records_raise_value_error_and_write_nothing(path):
    with Journal(path) as journal:
        with pytest.raises(ValueError, match=r"record 1 of 2 cannot be journaled as JSON: TypeError: .*object"):
            journal.append([{"id": "ok"}, {"id": "bad", "amount": object()}])
        with pytest.raises(ValueError, match="record 0 of 1"):
            journal.append([{"id": "\ud800"}])  # a lone surrogate has no UTF-8 form
        with pytest.raises(ValueError, match="at least one record"):
            journal.append([])
        with pytest.raises(TypeError, match="list of dicts"):
            journal.append({"id": "not in a list"})
        assert journal.last_seq == 0
        assert journal.read(0) == []
        assert journal.append([{"id": "fine", "amount": float("nan")}]) == 1  # no seq was used up
        assert journal.read(0)[0].records == [{"id": "fine", "amount": None}]  # JSON has no NaN


def test_a_second_opener_is_refused_until_the_first_closes(path):
    first = Journal(path)
    first.append([{"id": 1}])
    with pytest.raises(JournalLocked, match="open in another process"):
        Journal(path, lock_timeout=0.05)
    first.close()
    first.close()  # twice is fine
    with pytest.raises(ValueError, match="closed"):
        first.append([{"id": 2}])
    with Journal(path) as second:
        assert second.append([{"id": 2}]) == 2


def test_another_sqlite_database_is_not_taken_for_a_journal(tmp_path):
    other = tmp_path / "other.db"
    with closing(sqlite3.connect(other)) as db:
        db.execute("CREATE TABLE t (x)")
    with pytest.raises(JournalError, match="not a tocsin journal"):
        Journal(other)


def test_synchronous_setting(path):
    with Journal(path, synchronous="FULL") as journal:
        assert journal.synchronous == "full"
        assert journal.append([{"id": 1}]) == 1
    with pytest.raises(ValueError, match="synchronous: expected one of normal, full, extra"):
        Journal(path, synchronous="off")


# --- kill -9 ------------------------------------------------------------------------

CHILD = textwrap.dedent(inspect.getsource(transaction_records)) + textwrap.dedent("""
    import sys
    from tocsin.sources.journal import Journal

    journal = Journal(sys.argv[1])
    i = int(sys.argv[2])
    while True:
        seq = journal.append(transaction_records(i))
        print(f"A {seq} {i}", flush=True)  # only once append returned
        if i % 400 == 0:
            up_to = seq - 200
            print(f"t {up_to}", flush=True)  # about to truncate
            journal.truncate(up_to)
            print(f"T {up_to}", flush=True)  # truncated
        i += 1
""")


def run_child_and_kill(path: Path, first_request: int, rng: random.Random) -> list[str]:
    """Start a child appending from request ``first_request``, SIGKILL it at a random moment once it
    has appended, and return the complete lines it printed."""
    src = str(Path(journal_module.__file__).resolve().parents[2])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [src, os.environ.get("PYTHONPATH")]))}
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(path), str(first_request)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    lines: list[bytes] = []
    first = threading.Event()

    def collect() -> None:
        for line in child.stdout:
            lines.append(line)
            first.set()

    reader = threading.Thread(target=collect, daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 30
        while not first.wait(0.05):
            assert child.poll() is None, f"the child stopped before appending: {child.stderr.read().decode()}"
            assert time.monotonic() < deadline, "the child appended nothing in 30 s"
        time.sleep(rng.uniform(0.0, 0.3))
    finally:
        if child.poll() is None:
            child.send_signal(signal.SIGKILL)
        child.wait(10)
        reader.join(10)
        child.stdout.close()
        stderr = child.stderr.read().decode()
        child.stderr.close()
    assert child.returncode == -signal.SIGKILL, f"the child ended by itself ({child.returncode}): {stderr}"
    return [line.decode() for line in lines if line.endswith(b"\n")]  # a line cut by the kill proves nothing


def test_kill_9_loses_no_returned_append_and_leaves_no_partial_entry(tmp_path):
    path = tmp_path / "journal.db"
    rng = random.Random(20260101)
    printed: dict[int, int] = {}  # seq -> request number, of every append the children saw return
    truncated = announced = 0  # highest truncate that returned / that was about to start
    next_request = 1
    for _ in range(10):
        for line in run_child_and_kill(path, next_request, rng):
            kind, *values = line.split()
            if kind == "A":
                seq, request = map(int, values)
                assert seq not in printed, f"seq {seq} handed out twice"
                printed[seq] = request
            elif kind == "t":
                announced = max(announced, int(values[0]))
            elif kind == "T":
                truncated = max(truncated, int(values[0]))
        next_request = max(printed.values()) + 1000  # past any append that returned unprinted

        with Journal(path) as journal:
            entries = {entry.seq: entry for entry in journal.read(0)}
            seqs = list(entries)
            # whole entries only: each is exactly the request it claims to be, numbered without gaps
            for entry in entries.values():
                assert entry.records == transaction_records(request_number(entry.records)), f"entry {entry.seq} damaged"
            assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), "a gap in the numbering"
            # every append that returned is there, unless a truncate (finished or cut short) covered it
            for seq, request in printed.items():
                if seq > announced:
                    assert seq in entries, f"seq {seq} was returned to the child, then lost"
                    assert request_number(entries[seq].records) == request
            # a truncate that returned took effect; one cut short by the kill, whole or not at all
            assert seqs[0] - 1 in {truncated, announced}
            # numbering goes on above everything handed out before
            assert journal.last_seq >= max(printed)
            new = journal.append(transaction_records(next_request))
            assert new == max(max(printed), seqs[-1]) + 1
            assert journal.read(new - 1)[0].records == transaction_records(next_request)
            printed[new] = next_request
            next_request += 1
        with closing(sqlite3.connect(path)) as db:  # the journal is closed: check the file itself
            assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert len(printed) > 100  # the children got far enough for the kills to land mid-stream
