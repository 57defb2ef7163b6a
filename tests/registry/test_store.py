"""Tests for src/tocsin/registry/store.py (SQLite, and PostgreSQL with the ``postgres`` marker) and the
``open_registry`` factory of src/tocsin/registry/__init__.py."""

from __future__ import annotations

import multiprocessing
import threading

import pytest
from sqlalchemy import event

from tocsin.registry import CHAMPION, RegistryError, open_registry
from tocsin.registry.mlflow import MlflowRegistry
from tocsin.registry.store import StoreRegistry
from tocsin.spec import parse_spec
from tocsin.store.sql import Store

from ._contract import assert_same_arrays, check_contract, make_version, sample_arrays


def sqlite_url(tmp_path, name: str = "registry.db") -> str:
    return f"sqlite:///{tmp_path / name}"


def test_contract_sqlite(tmp_path):
    check_contract(StoreRegistry(sqlite_url(tmp_path)), "transactions", "payments")


@pytest.mark.postgres
def test_contract_postgres(pg_url):
    check_contract(StoreRegistry(pg_url), "transactions", "payments")


def _register_in_a_process(url: str, seed: int, count: int, barrier, out) -> None:
    registry = StoreRegistry(url)  # opened in the child: tables may be created by both at once
    barrier.wait()
    for i in range(count):
        out.put(registry.register(make_version("transactions", rows=seed + i), sample_arrays(seed + i)).version)
    registry.close()


def register_from_processes(url: str, processes: int = 3, count: int = 4) -> list[int]:
    # spawn, not fork: forked from a test process whose other threads (Kafka clients, OpenMP pools left by
    # earlier tests) may hold a lock at that instant, a child once hung and the suite failed after 60 s
    context = multiprocessing.get_context("spawn")
    barrier, out = context.Barrier(processes), context.Queue()
    workers = [context.Process(target=_register_in_a_process, args=(url, 1_000 * (p + 1), count, barrier, out)) for p in range(processes)]
    for worker in workers:
        worker.start()
    numbers = [out.get(timeout=60) for _ in range(processes * count)]
    for worker in workers:
        worker.join(30)
        assert worker.exitcode == 0
    return numbers


def test_trainers_in_several_processes_get_distinct_numbers_sqlite(tmp_path):
    url = sqlite_url(tmp_path)
    assert sorted(register_from_processes(url)) == list(range(1, 13))
    registry = StoreRegistry(url)
    for version in registry.versions("transactions"):
        assert_same_arrays(registry.arrays("transactions", version.version), sample_arrays(version.rows))


@pytest.mark.postgres
def test_trainers_in_several_processes_get_distinct_numbers_postgres(pg_url):
    assert sorted(register_from_processes(pg_url)) == list(range(1, 13))
    assert [v.version for v in StoreRegistry(pg_url).versions("transactions")] == list(range(1, 13))


@pytest.mark.postgres
def test_two_processes_creating_the_tables_at_once(pg_url):
    errors: list[BaseException] = []

    def open_one() -> None:
        try:
            StoreRegistry(pg_url).close()
        except BaseException as error:  # noqa: BLE001 - reported below
            errors.append(error)

    threads = [threading.Thread(target=open_one) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == []


def count_statements(registry: StoreRegistry, action) -> list[str]:
    seen: list[str] = []

    def record(_conn, _cursor, statement, *_args) -> None:
        seen.append(statement)

    event.listen(registry.engine, "before_cursor_execute", record)
    try:
        action()
    finally:
        event.remove(registry.engine, "before_cursor_execute", record)
    return seen


def test_alias_is_one_primary_key_lookup(tmp_path):
    registry = StoreRegistry(sqlite_url(tmp_path))
    for rows in range(1, 30):
        registry.register(make_version("transactions", rows=rows), sample_arrays(rows))
    registry.promote("transactions", 7)
    statements = count_statements(registry, lambda: registry.alias("transactions", CHAMPION))
    assert len(statements) == 1
    with registry.engine.connect() as conn:
        plan = " ".join(str(row[-1]) for row in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statements[0], ("transactions", CHAMPION)))
    assert "SEARCH model_aliases USING INDEX" in plan or "USING PRIMARY KEY" in plan, plan
    listing = count_statements(registry, lambda: registry.versions("transactions"))
    assert len(listing) == 2 and not any("model_arrays" in s for s in listing), "listing versions reads no blob"


def test_versions_live_beside_the_results_and_survive_a_reopen(tmp_path):
    url = sqlite_url(tmp_path, "store.db")
    store = Store(url)  # the results store first, then the registry in the same file
    first = StoreRegistry(url)
    first.register(make_version("transactions"), sample_arrays(1))
    first.promote("transactions", 1, by="alice")
    first.close()
    again = StoreRegistry(url)
    assert again.alias("transactions", CHAMPION) == 1 and again.get("transactions", 1).aliases == (CHAMPION,)
    assert again.alias_history("transactions", CHAMPION)[0].by == "alice"
    assert store.ping()


def test_unsupported_database_is_refused():
    with pytest.raises(RegistryError, match="unsupported database 'mysql'"):
        StoreRegistry("mysql://user@host/db")


def spec_with(tmp_path, registry: dict):
    return parse_spec({
        "name": "transactions", "source": {"kind": "simulator"},
        "schema": {"key_field": "card_id", "time_field": "ts", "numeric": ["amount"]},
        "features": [{"kind": "value", "field": "amount"}],
        "store": {"url": sqlite_url(tmp_path, "store.db")}, "registry": registry,
    })


def test_open_registry_uses_the_store_or_its_own_url(tmp_path):
    default = open_registry(spec_with(tmp_path, {}))
    assert isinstance(default, StoreRegistry) and default.engine.url.database == str(tmp_path / "store.db")
    own = open_registry(spec_with(tmp_path, {"url": sqlite_url(tmp_path, "models.db")}))
    assert own.engine.url.database == str(tmp_path / "models.db")


def test_open_registry_mlflow_takes_the_uri_from_the_spec_or_the_environment(tmp_path, monkeypatch):
    pytest.importorskip("mlflow")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    named = open_registry(spec_with(tmp_path, {"kind": "mlflow", "tracking_uri": "http://127.0.0.1:1"}))
    assert isinstance(named, MlflowRegistry) and named.tracking_uri == "http://127.0.0.1:1"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:2")
    assert open_registry(spec_with(tmp_path, {"kind": "mlflow"})).tracking_uri == "http://127.0.0.1:2"
