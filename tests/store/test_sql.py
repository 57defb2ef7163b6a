"""Tests for src/tocsin/store/sql.py (SQLite; PostgreSQL when TOCSIN_TEST_POSTGRES_URL is set)."""

from __future__ import annotations

import os
import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy.exc import IntegrityError

from tocsin.store import Store, metadata


@pytest.fixture(
    params=[
        "sqlite",
        pytest.param("postgresql", marks=pytest.mark.postgres),
    ]
)
def store(request, tmp_path):
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path}/nested/dir/results.db"
    else:
        url = os.environ.get("TOCSIN_TEST_POSTGRES_URL")
        if not url:
            pytest.skip("set TOCSIN_TEST_POSTGRES_URL to run against PostgreSQL")
    s = Store(url)
    yield s
    if request.param != "sqlite":
        metadata.drop_all(s.engine)
    s.close()


def anomaly(i: int, **overrides):
    row = {
        "event_id": f"e{i}",
        "entity": f"user{i % 3}",
        "event_time": 1_700_000_000.0 + i,
        "score": 0.99,
        "score_100": 99.0,
        "raw_score": 4.2,
        "severity": ("info", "warning", "critical")[i % 3],
        "detector": "hst",
        "explanation": [{"feature": "amount_z", "contribution": 0.8, "text": "amount is 6x usual"}],
        "fields": {"amount": 120.5 + i, "country": "DE"},
    }
    row.update(overrides)
    return row


def alert(i: int, **overrides):
    row = {
        "alert_key": f"user{i}:amount",
        "entity": f"user{i}",
        "severity": "warning",
        "first_event_id": f"e{i}",
        "event_time": 1_700_000_000.0 + i,
        "score": 0.97,
        "explanation": [{"feature": "amount_z", "contribution": 0.8, "text": "big"}],
    }
    row.update(overrides)
    return row


def dead_letter(i: int, **overrides):
    row = {"source": "kafka:tx/0", "position": i, "reason": "missing key", "raw": b"\x00\xffnot json"}
    row.update(overrides)
    return row


def scored(i: int):
    return {"event_id": f"e{i}", "entity": f"user{i % 3}", "event_time": float(i), "score": 0.1, "is_anomaly": i % 2 == 0}


def test_creates_parent_dirs_and_sets_wal(tmp_path):
    s = Store(f"sqlite:///{tmp_path}/a/b/c.db")
    assert (tmp_path / "a" / "b" / "c.db").exists()
    with s.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL
    assert s.ping()
    s.close()


def test_unsupported_database_is_refused():
    with pytest.raises(ValueError, match="unsupported database 'mysql'"):
        Store("mysql://user:secret@localhost/db")


def test_ping_false_when_database_unreachable(tmp_path):
    s = Store(f"sqlite:///{tmp_path}/gone/x.db")
    s.close()
    (tmp_path / "gone" / "x.db").unlink()
    (tmp_path / "gone").rmdir()
    assert s.ping() is False


def test_writing_the_same_rows_twice_leaves_one_row_each(store):
    for _ in range(2):
        store.write_anomalies("p", [anomaly(i) for i in range(5)])
        store.write_alerts("p", [alert(i) for i in range(3)])
        store.write_dead_letters("p", [dead_letter(i) for i in range(4)])
        store.write_scored_events("p", [scored(i) for i in range(6)])
    assert store.count("anomalies") == 5
    assert store.count("alerts") == 3
    assert store.count("dead_letters") == 4
    assert store.count("scored_events") == 6


def test_replay_overlapping_a_previous_write_adds_only_new_rows(store):
    store.write_batch("p", anomalies=[anomaly(i) for i in range(0, 60)], scored_events=[scored(i) for i in range(60)])
    # a crash after the first write replays from an earlier checkpoint: events 40..99
    store.write_batch(
        "p", anomalies=[anomaly(i) for i in range(40, 100)], scored_events=[scored(i) for i in range(40, 100)]
    )
    assert store.count("anomalies") == 100
    assert store.count("scored_events") == 100
    assert store.anomaly_event_ids("p") == {f"e{i}" for i in range(100)}


def test_a_replayed_row_keeps_the_first_write(store):
    store.write_anomalies("p", [anomaly(1, score=0.9)])
    store.write_anomalies("p", [anomaly(1, score=0.5)])
    [row] = store.anomalies("p")
    assert row["score"] == 0.9


def test_idempotency_keys_are_per_pipeline(store):
    store.write_anomalies("a", [anomaly(1)])
    store.write_anomalies("b", [anomaly(1)])
    store.write_dead_letters("a", [dead_letter(1)])
    store.write_dead_letters("b", [dead_letter(1)])
    store.write_dead_letters("b", [dead_letter(1, source="kafka:tx/1")])
    assert store.count("anomalies") == 2
    assert store.count("anomalies", pipeline="a") == 1
    assert store.count("dead_letters", pipeline="b") == 2
    assert store.anomaly_event_ids("a") == {"e1"}


def test_duplicate_event_ids_within_one_write_keep_one(store):
    store.write_anomalies("p", [anomaly(1), anomaly(1), anomaly(2)])
    assert store.count("anomalies") == 2


@pytest.mark.parametrize(
    "bad",
    [
        {"alerts": [alert(1), alert(2, severity="apocalyptic")]},  # CHECK constraint
        {"alerts": [alert(1), alert(2, status="snoozed")]},  # CHECK constraint
        {"dead_letters": [dead_letter(1), dead_letter(2, reason=None)]},  # NOT NULL
        {"scored_events": [scored(1), {"event_id": "x"}]},  # several NOT NULL
    ],
)
def test_write_batch_is_atomic(store, bad):
    store.write_anomalies("p", [anomaly(0)])
    with pytest.raises(IntegrityError):
        store.write_batch(
            "p",
            anomalies=[anomaly(i) for i in range(1, 50)],
            **{"alerts": [alert(9)], "dead_letters": [dead_letter(9)], **bad},
        )
    assert store.count("anomalies") == 1
    assert store.count("alerts") == 0
    assert store.count("dead_letters") == 0
    assert store.count("scored_events") == 0
    # the store is usable afterwards and the same batch, fixed, lands whole
    store.write_batch("p", anomalies=[anomaly(i) for i in range(1, 50)], alerts=[alert(9)])
    assert store.count("anomalies") == 50
    assert store.count("alerts") == 1


def test_a_bad_value_fails_before_writing(store):
    with pytest.raises(ValueError):
        store.write_batch("p", anomalies=[anomaly(1)], dead_letters=[dead_letter(1, position="not a number")])
    assert store.count("anomalies") == 0


def test_json_round_trip_with_numpy_values_and_nan(store):
    explanation = [
        {"feature": "amount_z", "contribution": np.float64(0.75), "text": "Betrag 6× üblich ✓"},
        {"feature": "velocity_per_min", "contribution": np.float32(0.25), "text": "12 tx/min"},
        {"feature": "weird", "contribution": float("nan"), "text": ""},
    ]
    fields = {"amount": np.float64(12.5), "count": np.int64(3), "ok": np.bool_(True), "tags": np.array([1, 2]),
              "nested": {"a": [1, "two", None]}, "country": "DE"}
    store.write_anomalies("p", [anomaly(1, explanation=explanation, fields=fields)])
    [row] = store.anomalies("p")
    assert row["explanation"] == [
        {"feature": "amount_z", "contribution": 0.75, "text": "Betrag 6× üblich ✓"},
        {"feature": "velocity_per_min", "contribution": 0.25, "text": "12 tx/min"},
        {"feature": "weird", "contribution": None, "text": ""},
    ]
    assert row["fields"] == {"amount": 12.5, "count": 3, "ok": True, "tags": [1, 2],
                             "nested": {"a": [1, "two", None]}, "country": "DE"}


def test_numpy_scalars_bind_and_defaults_fill_in(store):
    store.write_anomalies(
        "p",
        [{"event_id": np.str_("e1"), "entity": np.str_("u"), "event_time": np.float64(5.0), "score": np.float32(0.5),
          "score_100": np.float32(50), "severity": "info", "detector": "z", "label": np.int64(1)}],
    )
    store.write_dead_letters("p", [{"source": "file:x.jsonl", "position": np.int64(7), "reason": "bad", "raw": "text"}])
    before = time.time()
    store.write_alerts("p", [alert(1)])
    [row] = store.anomalies()
    assert row["explanation"] == [] and row["fields"] == {} and row["raw_score"] is None and row["label"] == 1
    [a] = store.alerts()
    assert a["status"] == "open" and a["count"] == 1
    assert a["created_at"] == a["updated_at"] >= before
    [d] = store.dead_letters()
    assert d["raw"] == b"text" and d["position"] == 7


def test_anomaly_filters(store):
    store.write_anomalies("p", [anomaly(i) for i in range(30)])
    store.write_anomalies("q", [anomaly(i) for i in range(5)])
    assert len(store.anomalies(limit=1000)) == 35
    assert {r["pipeline"] for r in store.anomalies("q")} == {"q"}
    rows = store.anomalies("p", entity="user1", limit=1000)
    assert {r["event_id"] for r in rows} == {f"e{i}" for i in range(30) if i % 3 == 1}
    assert {r["severity"] for r in store.anomalies("p", severity="critical")} == {"critical"}
    assert {r["severity"] for r in store.anomalies("p", severity=["info", "warning"])} == {"info", "warning"}
    t0 = 1_700_000_000.0
    rows = store.anomalies("p", since=t0 + 10, until=t0 + 20)
    assert [r["event_id"] for r in rows] == [f"e{i}" for i in range(19, 9, -1)]
    assert store.anomalies("p", entity="nobody") == []
    with pytest.raises(ValueError):
        store.anomalies(limit=0)


def test_anomalies_newest_event_first_with_ties_paginate_exactly(store):
    # written out of event-time order, with ties, as a replay of late events would be
    times = [5.0, 1.0, 3.0, 3.0, 9.0, 3.0, 1.0, 7.0]
    store.write_anomalies("p", [anomaly(i, event_time=t) for i, t in enumerate(times)])
    everything = store.anomalies("p")
    assert [r["event_time"] for r in everything] == sorted(times, reverse=True)
    pages, after = [], None
    while page := store.anomalies("p", limit=3, after_id=after):
        pages.append(page)
        after = page[-1]["id"]
    assert [len(p) for p in pages] == [3, 3, 2]
    assert [r["id"] for p in pages for r in p] == [r["id"] for r in everything]


@settings(max_examples=25, deadline=None)
@given(
    times=st.lists(st.integers(0, 5), min_size=0, max_size=30),
    page_size=st.integers(1, 7),
)
def test_pagination_visits_every_row_once(times, page_size):
    with Store("sqlite://") as s:
        s.write_anomalies("p", [anomaly(i, event_time=float(t)) for i, t in enumerate(times)])
        seen, after = [], None
        while page := s.anomalies("p", limit=page_size, after_id=after):
            seen.extend(page)
            after = page[-1]["id"]
        assert sorted(r["event_id"] for r in seen) == sorted(f"e{i}" for i in range(len(times)))
        keys = [(r["event_time"], r["id"]) for r in seen]
        assert keys == sorted(keys, reverse=True)


def test_alert_queries_and_status(store):
    store.write_alerts("p", [alert(i, severity="critical" if i % 2 else "warning") for i in range(10)])
    assert [a["alert_key"] for a in store.alerts("p", limit=2)] == ["user9:amount", "user8:amount"]
    assert len(store.alerts("p", severity="critical")) == 5
    [first] = store.alerts("p", entity="user3")
    assert store.set_alert_status("p", first["id"], "acknowledged", now=first["updated_at"] + 1)
    [acked] = store.alerts("p", status="acknowledged")
    assert acked["id"] == first["id"] and acked["updated_at"] == first["updated_at"] + 1
    assert len(store.alerts("p", status=["open", "resolved"])) == 9
    assert not store.set_alert_status("p", 10_000, "resolved")
    with pytest.raises(ValueError):
        store.set_alert_status("p", first["id"], "closed")
    page1 = store.alerts("p", limit=4)
    page2 = store.alerts("p", limit=4, after_id=page1[-1]["id"])
    assert [a["alert_key"] for a in page2] == [f"user{i}:amount" for i in (5, 4, 3, 2)]


def test_dead_letter_queries(store):
    store.write_dead_letters("p", [dead_letter(i, source="kafka:tx/0") for i in range(5)])
    store.write_dead_letters("p", [dead_letter(i, source="kafka:tx/1") for i in range(5)])
    assert store.count("dead_letters", "p") == 10
    rows = store.dead_letters("p", source="kafka:tx/1", limit=3)
    assert [r["position"] for r in rows] == [4, 3, 2]
    assert rows[0]["raw"] == b"\x00\xffnot json" and rows[0]["reason"] == "missing key"
    more = store.dead_letters("p", source="kafka:tx/1", after_id=rows[-1]["id"])
    assert [r["position"] for r in more] == [1, 0]


def test_feedback_labels_the_anomaly(store):
    store.write_anomalies("p", [anomaly(1), anomaly(2)])
    store.write_feedback("p", [{"event_id": "e1", "label": "true_positive", "note": "confirmed fraud"},
                               {"event_id": "e2", "label": "false_positive"}])
    labels = {r["event_id"]: r["label"] for r in store.anomalies("p")}
    assert labels == {"e1": 1, "e2": 0}
    assert [f["label"] for f in store.feedback("p")] == ["false_positive", "true_positive"]
    assert store.feedback("p", event_id="e1")[0]["note"] == "confirmed fraud"
    with pytest.raises(IntegrityError):
        store.write_feedback("p", [{"event_id": "e1", "label": "maybe"}])
    assert store.count("feedback") == 2


def test_count_rejects_unknown_table(store):
    with pytest.raises(ValueError, match="anomalies"):
        store.count("users")


def test_writing_10k_anomalies_is_fast(store):
    rows = [anomaly(i, event_time=float(i)) for i in range(10_000)]
    store.write_anomalies("warmup", rows[:10])
    start = time.perf_counter()
    store.write_anomalies("p", rows)
    elapsed = time.perf_counter() - start
    print(f"\n10k anomaly rows written in {elapsed * 1000:.0f} ms ({store.engine.dialect.name})")
    assert store.count("anomalies", "p") == 10_000
    assert elapsed < 1.0


def test_two_processes_creating_the_tables_at_once_both_succeed(tmp_path):
    """Workers start together: both see the tables missing; the loser of CREATE TABLE must not crash."""
    import subprocess
    import sys

    url = f"sqlite:///{tmp_path / 'race.db'}"
    code = "import sys; from tocsin.store.sql import Store; Store(sys.argv[1]).close(); print('ok')"
    for _ in range(3):
        procs = [subprocess.Popen([sys.executable, "-c", code, url], stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(4)]
        results = [p.communicate(timeout=60) for p in procs]
        assert all(p.returncode == 0 for p in procs), [err.decode()[-300:] for _, err in results]
        (tmp_path / "race.db").unlink()
