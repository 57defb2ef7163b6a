"""Tests for src/tocsin/store/tables.py: the schema is portable to PostgreSQL."""

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.schema import CreateIndex, CreateTable

from tocsin.store.tables import CONFLICT_KEYS, TABLES, anomalies, metadata


def test_every_table_compiles_for_sqlite_and_postgresql():
    for dialect in (sqlite.dialect(), postgresql.dialect()):
        for table in metadata.sorted_tables:
            assert table.name in str(CreateTable(table).compile(dialect=dialect))
            for index in table.indexes:
                str(CreateIndex(index).compile(dialect=dialect))


def test_conflict_keys_are_unique_constraints():
    for name, key in CONFLICT_KEYS.items():
        if key is None:
            continue
        uniques = {tuple(c.name for c in con.columns) for con in TABLES[name].constraints if con.__class__.__name__ == "UniqueConstraint"}
        assert key in uniques, name


def test_on_conflict_do_nothing_compiles_on_both_dialects():
    for module in (sqlite, postgresql):
        statement = module.insert(anomalies).on_conflict_do_nothing(index_elements=["pipeline", "event_id"])
        assert "ON CONFLICT (pipeline, event_id) DO NOTHING" in str(statement.compile(dialect=module.dialect()))


def test_anomaly_indexes():
    indexed = {tuple(c.name for c in ix.columns) for ix in anomalies.indexes}
    assert {("pipeline", "event_time"), ("pipeline", "entity"), ("pipeline", "severity")} <= indexed


def test_json_columns_are_jsonb_on_postgresql():
    ddl = str(CreateTable(anomalies).compile(dialect=postgresql.dialect()))
    assert "explanation JSONB" in ddl and "fields JSONB" in ddl
    assert "event_time FLOAT(53)" in ddl
