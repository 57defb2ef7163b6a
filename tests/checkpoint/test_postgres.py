"""Tests for src/tocsin/checkpoint/postgres.py against a real PostgreSQL (and SQLite through the same code)."""

from __future__ import annotations

import numpy as np
import pytest

from tocsin.checkpoint.postgres import SqlCheckpointStore
from tocsin.checkpoint import open_checkpoint_store

from ._contract import check_contract


@pytest.mark.postgres
def test_contract_postgres(pg_url):
    check_contract(SqlCheckpointStore(pg_url, namespace="tx"))


@pytest.mark.postgres
def test_big_state_and_namespaces(pg_url):
    a, b = open_checkpoint_store(pg_url, "a"), open_checkpoint_store(pg_url, "b")
    big = {"training/rows": np.random.default_rng(1).normal(size=(50_000, 11))}
    a.save("events/0", big, 10)
    np.testing.assert_array_equal(a.load("events/0").state["training/rows"], big["training/rows"])
    assert b.load("events/0") is None


@pytest.mark.postgres
def test_postgresql_fixture_from_pytest_postgresql_works(postgresql):
    assert postgresql.execute("select 1").fetchone() == (1,)


def test_contract_sqlite(tmp_path):
    check_contract(SqlCheckpointStore(f"sqlite:///{tmp_path}/c.db", namespace="tx"))
