"""Databases created before a column was added gain it on start (SQLite; PostgreSQL when
TOCSIN_TEST_POSTGRES_URL is set): ``create_tables`` adds every missing nullable column."""

from __future__ import annotations

import os
import threading

import pytest
from sqlalchemy import inspect, text

from tocsin.store import Store, metadata
from tocsin.store.tables import create_tables

#: columns added after the first release: (table, column)
ADDED = [("alerts", "acknowledged_by"), ("alerts", "acknowledged_at"), ("alerts", "resolved_by"), ("alerts", "resolved_at"),
         ("feedback", "author")]


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def url(request, tmp_path):
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/old.db"
        return
    url = os.environ.get("TOCSIN_TEST_POSTGRES_URL")
    if not url:
        pytest.skip("set TOCSIN_TEST_POSTGRES_URL to run against PostgreSQL")
    yield url
    store = Store(url)
    metadata.drop_all(store.engine)
    store.close()


def columns(store: Store, table: str) -> set[str]:
    return {c["name"] for c in inspect(store.engine).get_columns(table)}


def make_old(url: str) -> None:
    """The database as an earlier version left it: the tables without the added columns, with rows."""
    store = Store(url)
    with store.engine.begin() as conn:
        for table, column in ADDED:
            conn.execute(text(f"ALTER TABLE {table} DROP COLUMN {column}"))
        conn.execute(text("INSERT INTO feedback (pipeline, event_id, label, created_at) VALUES ('p', 'e1', 'true_positive', 1.0)"))
        conn.execute(text("INSERT INTO alerts (pipeline, alert_key, entity, severity, status, first_event_id, event_time, score, count, "
                          "explanation, created_at, updated_at) VALUES ('p', 'k', 'u', 'warning', 'open', 'e1', 1.0, 0.9, 1, '[]', 1.0, 1.0)"))
    store.close()


def test_an_old_database_gains_the_added_columns_on_start(url) -> None:
    make_old(url)
    store = Store(url)
    try:
        for table, column in ADDED:
            assert column in columns(store, table), (table, column)
        alert_id = store.alerts(pipeline="p")[0]["id"]
        assert store.set_alert_status("p", alert_id, "acknowledged", by="key:abc")
        row = store.alerts(pipeline="p")[0]
        assert row["acknowledged_by"] == "key:abc" and row["acknowledged_at"] > 1.0 and row["resolved_by"] is None
        store.write_feedback("p", [{"event_id": "e1", "label": "false_positive", "author": "ada"}])
        assert [r["author"] for r in store.feedback("p")] == ["ada", None], "old rows have no author"
    finally:
        store.close()
    Store(url).close()  # a second start finds nothing to add


def test_two_processes_starting_together_both_succeed(url) -> None:
    make_old(url)
    errors: list[BaseException] = []

    def start() -> None:
        try:
            Store(url).close()
        except BaseException as error:  # noqa: BLE001 - reported below
            errors.append(error)

    threads = [threading.Thread(target=start) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    store = Store(url)
    assert {c for _t, c in ADDED if _t == "alerts"} <= columns(store, "alerts")
    store.close()


def test_create_tables_adds_only_nullable_columns(tmp_path) -> None:
    from sqlalchemy import Column, Integer, MetaData, String, Table, create_engine

    engine = create_engine(f"sqlite:///{tmp_path}/t.db")
    old = MetaData()
    Table("t", old, Column("id", Integer, primary_key=True))
    create_tables(engine, old)
    new = MetaData()
    Table("t", new, Column("id", Integer, primary_key=True), Column("required", String(8), nullable=False))
    with pytest.raises(RuntimeError, match="t.required.*NOT NULL"):
        create_tables(engine, new)
