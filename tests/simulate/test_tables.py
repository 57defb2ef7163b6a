"""Tests for src/tocsin/simulate/tables.py (the quality scenario: hourly batch loads of table rows with data-quality
incidents), its writer and `tocsin simulate --scenario quality`."""

from __future__ import annotations

import json
import math
from collections import defaultdict

import numpy as np
import pytest
from typer.testing import CliRunner

from tests.simulate.helpers import assert_same
from tocsin.batch import EventBatch
from tocsin.cli.main import app
from tocsin.simulate import SCENARIOS, simulator_class
from tocsin.simulate.tables import (
    ADDED_FIELD,
    INCIDENT_KINDS,
    NUMERIC_COLUMNS,
    TableLoadSimulator,
)
from tocsin.spec import SimulatorSource as SimulatorSpec

PARAMS = {"tables": 4, "incident_rate": 2.0, "warmup_days": 0.5, "seed": 4}
DAYS = 4
HOUR = 3_600.0


@pytest.fixture(scope="module")
def sim() -> TableLoadSimulator:
    return TableLoadSimulator(**PARAMS)


@pytest.fixture(scope="module")
def stream(sim) -> EventBatch:
    return sim.generate(sum(sim._day_size(i) for i in range(DAYS)))


@pytest.fixture(scope="module")
def rows(stream) -> list[dict]:
    return [json.loads(raw) for raw in stream.extra["_raw"].tolist()]


@pytest.fixture(scope="module")
def loads(sim, stream, rows) -> dict[tuple[str, float], list[int]]:
    """Row indices of each load: (table, hour start) -> rows."""
    out = defaultdict(list)
    for i, row in enumerate(rows):
        out[row["table"], sim.start_time + math.floor((row["ts"] - sim.start_time) / HOUR) * HOUR].append(i)
    return dict(out)


@pytest.fixture(scope="module")
def table(sim, stream) -> list[dict]:
    return sim.incidents(float(stream.times.max()) + 0.001)


def covering(table, name, hour_start):
    """The kinds of the incidents covering the load of table ``name`` for the hour at ``hour_start``."""
    return {i["kind"] for i in table if i["entity"] == name and i["start"] <= hour_start < i["end"]}


# --- registration, determinism, resuming ---------------------------------------------


def test_registered_and_built_from_a_spec():
    assert SCENARIOS["quality"] == "tocsin.simulate.tables:TableLoadSimulator"
    assert simulator_class("quality") is TableLoadSimulator
    sim = TableLoadSimulator.from_spec(SimulatorSpec(kind="simulator", scenario="quality", tables=3, seed=5))
    assert (sim.tables, sim.report_every, sim.seed) == (3, HOUR, 5)
    for bad in ({"tables": 0}, {"report_every": 7_000.0}, {"report_every": 60.0}, {"incident_rate": -1}):
        with pytest.raises(ValueError):
            TableLoadSimulator(**bad)


def test_same_parameters_give_identical_rows_and_another_seed_others(stream):
    assert_same(stream, TableLoadSimulator(**PARAMS).generate(len(stream)))
    other = TableLoadSimulator(**{**PARAMS, "seed": PARAMS["seed"] + 1}).generate(5_000)
    assert other.extra["_raw"].tolist() != stream.extra["_raw"][:5_000].tolist()


@pytest.mark.parametrize("start_position", [0, 1, 777, 5_000, 12_345, 20_001])
def test_resuming_at_any_position_equals_a_fresh_run(stream, start_position):
    count = min(4_000, len(stream) - start_position)
    batches = list(TableLoadSimulator(**PARAMS).batches(1_111, start_position=start_position, max_events=count))
    assert_same(EventBatch.concat(batches), stream.take(slice(start_position, start_position + count)))


def test_days_are_the_loads_of_each_day_in_load_order(sim, stream, rows):
    cut = 0
    for index in range(DAYS):
        day = sim.day(index)
        assert len(day) == sim._day_size(index)
        assert_same(day, stream.take(slice(cut, cut + len(day))))
        cut += len(day)
    loaded = [row["loaded_at"] for row in rows]
    assert loaded == sorted(loaded), "the stream is in load order"
    assert stream.positions.tolist() == list(range(len(stream)))
    assert len(set(stream.ids.tolist())) == len(stream)


# --- the rows ---------------------------------------------------------------------------


def test_rows_are_raw_json_matching_the_batch_columns(stream, rows):
    assert [row["table"] for row in rows] == stream.keys.tolist()
    assert [row["ts"] for row in rows] == stream.times.tolist()
    assert [row["is_incident"] for row in rows] == stream.labels.tolist()
    assert [row["incident"] for row in rows] == stream.extra["incident"].tolist()
    assert (stream.labels == 1).tolist() == (stream.extra["incident"] != "").tolist()
    assert all({"id", "table", "ts", "loaded_at", "amount"} <= set(row) for row in rows if not row["incident"])
    assert all({"id", "table", "ts", "loaded_at"} <= set(row) for row in rows)


def test_each_load_holds_its_hour_in_event_time_order_and_loads_after_it(loads, rows):
    for (name, hour_start), index in loads.items():
        times = [rows[i]["ts"] for i in index]
        assert times == sorted(times) and hour_start <= times[0] and times[-1] < hour_start + HOUR
        assert len({rows[i]["loaded_at"] for i in index}) == 1, "a batch loads at once"
        assert rows[index[0]]["loaded_at"] >= hour_start + HOUR + 120, "after its hour ends"


def test_every_row_of_an_incident_batch_is_labelled_with_its_kind(sim, stream, rows, loads, table):
    warmup_end = sim.start_time + sim.warmup_days * 86_400
    assert {i["kind"] for i in table} == set(INCIDENT_KINDS)
    assert all(i["start"] >= warmup_end and i["start"] % HOUR == 0 and i["end"] % HOUR == 0 for i in table)
    seen = set()
    for (name, hour_start), index in loads.items():
        kinds = {rows[i]["incident"] for i in index}
        expected = covering(table, name, hour_start)
        if not expected:
            assert kinds == {""}, (name, hour_start)
            continue
        (kind,) = kinds  # one kind for the whole batch
        assert kind in expected and all(rows[i]["is_incident"] == 1 for i in index)
        seen.add(kind)
    assert seen == set(INCIDENT_KINDS)
    assert stream.labels[stream.times < warmup_end].sum() == 0


def only(table, name, hour_start, kind):
    return covering(table, name, hour_start) == {kind}


def test_type_change_rows_carry_text_in_a_numeric_column(rows, loads, table):
    changed = 0
    for (name, hour_start), index in loads.items():
        batch = [rows[i] for i in index]
        texts = {c for c in NUMERIC_COLUMNS if any(isinstance(r.get(c), str) for r in batch)}
        if only(table, name, hour_start, "type_change"):
            (column,) = texts
            values = [r[column] for r in batch if r.get(column) is not None]
            assert values and all(isinstance(v, str) for v in values)
            assert all(float(v) == float(f"{float(v):.2f}") for v in values), "numbers as text, like '12.50'"
            changed += 1
        elif not covering(table, name, hour_start):
            assert texts == set(), "normal rows keep their numbers as numbers"
    assert changed >= 2


def test_field_missing_rows_lack_the_field_and_field_added_rows_carry_a_new_one(rows, loads, table):
    usual: dict[str, set[str]] = {}
    for (name, hour_start), index in loads.items():
        if not covering(table, name, hour_start):
            usual.setdefault(name, set()).update(*(set(rows[i]) for i in index))
    missing = added = 0
    for (name, hour_start), index in loads.items():
        batch = [rows[i] for i in index]
        if only(table, name, hour_start, "field_missing") and batch:
            absent = {c for c in usual[name] if all(c not in r for r in batch)}
            assert len(absent) == 1 and absent.isdisjoint({"table", "ts", "loaded_at", "id"}), absent
            missing += 1
        elif only(table, name, hour_start, "field_added") and batch:
            assert all(isinstance(r.get(ADDED_FIELD), str) for r in batch)
            added += 1
        elif not covering(table, name, hour_start):
            assert all(ADDED_FIELD not in r for r in batch)
    assert missing >= 2 and added >= 2


def test_stale_batches_load_hours_after_their_normal_load(sim, rows, loads, table):
    stale = 0
    for (name, hour_start), index in loads.items():
        t = sim._entity_names.tolist().index(name)
        normal = hour_start + HOUR + sim._delay[t]
        loaded = rows[index[0]]["loaded_at"]
        if "stale_batch" in covering(table, name, hour_start):
            # at least an hour after its normal load (load times are rounded to the millisecond)
            assert loaded >= normal + HOUR - 1e-3, (name, hour_start, loaded - normal)
            assert min(rows[i]["loaded_at"] - rows[i]["ts"] for i in index) > HOUR
            stale += 1
        elif not covering(table, name, hour_start):
            assert normal - 1e-3 <= loaded <= normal + 60.0 + 1e-3
    assert stale >= 3


def test_a_volume_collapse_keeps_a_fraction_of_the_rows(rows, loads, table):
    sizes = defaultdict(list)
    collapsed = []
    for (name, hour_start), index in loads.items():
        if not covering(table, name, hour_start):
            sizes[name].append(len(index))
        elif only(table, name, hour_start, "volume_collapse"):
            collapsed.append((name, len(index)))
    assert collapsed
    assert np.mean([n / np.median(sizes[name]) for name, n in collapsed]) < 0.25


# --- writing and the CLI ------------------------------------------------------------------


def test_write_refuses_csv_and_parquet_and_writes_json_lines(tmp_path, stream):
    sim = TableLoadSimulator(**PARAMS)
    batch = stream.take(slice(0, 500))
    for fmt in ("csv", "parquet"):
        with pytest.raises(ValueError, match=r"JSON lines only.*CSV and Parquet"):
            sim.write(batch, tmp_path / f"x.{fmt}", fmt)
        assert not (tmp_path / f"x.{fmt}").exists()
    path = tmp_path / "x.jsonl"
    sim.write(batch, path)
    lines = path.read_bytes().splitlines()
    assert lines == batch.extra["_raw"].tolist()
    assert [json.loads(line)["ts"] for line in lines] == batch.times.tolist()


def test_cli_simulate_quality_writes_rows_and_incidents(tmp_path):
    out = tmp_path / "rows.jsonl"
    result = CliRunner().invoke(app, ["simulate", "--scenario", "quality", "--tables", "3", "--incident-rate", "1.0",
                                      "--seed", "9", "--events", "6000", "--out", str(out)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    lines = out.read_bytes().splitlines()
    assert len(lines) == 6_000
    expected = TableLoadSimulator(tables=3, incident_rate=1.0, seed=9).generate(6_000)
    assert lines == expected.extra["_raw"].tolist()
    written = json.loads((tmp_path / "rows.jsonl.incidents.json").read_text())
    assert written["events"] == 6_000 and "6,000 events" in result.output
    bad = CliRunner().invoke(app, ["simulate", "--scenario", "quality", "--events", "100", "--out", str(tmp_path / "rows.csv")],
                             catch_exceptions=False)
    assert bad.exit_code == 2 and "JSON lines only" in bad.output


def test_cli_incident_table_covers_every_labelled_row_of_a_stream_in_load_order(tmp_path):
    out = tmp_path / "rows.jsonl"
    # with these options the 109,691st row is from a stale batch, hours before rows already written
    result = CliRunner().invoke(app, ["simulate", "--scenario", "quality", "--tables", "3", "--incident-rate", "5", "--seed", "1",
                                      "--events", "109691", "--out", str(out)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in out.read_bytes().splitlines()]
    written = json.loads((tmp_path / "rows.jsonl.incidents.json").read_text())
    times = [row["ts"] for row in rows]
    assert rows[-1]["incident"] == "stale_batch" and max(times) > times[-1] + HOUR, "the case this test is about"
    unlisted = {(row["table"], row["incident"]) for row in rows if row["is_incident"] and not any(
        i["entity"] == row["table"] and i["start"] <= row["ts"] < i["end"] for i in written["incidents"])}
    assert unlisted == set()
    assert (written["from"], written["to"]) == (min(times), max(times))
