"""Tests for src/tocsin/simulate/retail.py (and the retail scenario of the simulator source, `tocsin simulate` and
the reference spec examples/retail.yaml)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from tests.simulate import helpers
from tests.simulate.helpers import DAY, assert_same, rows_of
from tocsin.batch import EventBatch
from tocsin.simulate import simulator_class
from tocsin.simulate.retail import (
    FIELDS,
    INCIDENT_KINDS,
    PRODUCTS,
    RetailSimulator,
    write_events,
)
from tocsin.sources.simulator import SimulatorSource
from tocsin.spec import SimulatorSource as SimulatorSpec
from tocsin.spec import load_spec, parse_spec

ROOT = Path(__file__).resolve().parents[2]
# 5 stores: ~70,000 events a weekday; ~5 incidents a day after one day of warm-up
PARAMS = {"stores": 5, "incident_rate": 1.0, "warmup_days": 1.0, "seed": 11}
DAYS = 4  # 2026-01-01 is a Thursday: Thursday to Sunday, a weekend included
LIMITS = {"sales_collapse": (3600, 14400), "shrinkage": (2700, 7200), "refund_till": (2700, 9000)}


@pytest.fixture(scope="module")
def sim() -> RetailSimulator:
    return RetailSimulator(**PARAMS)


@pytest.fixture(scope="module")
def stream(sim: RetailSimulator) -> EventBatch:
    """Four days of till lines and shelf counts."""
    return sim.generate(sum(sim._day_size(i) for i in range(DAYS)))


@pytest.fixture(scope="module")
def table(sim: RetailSimulator, stream: EventBatch) -> list[dict]:
    return sim.incidents(float(stream.times[-1]) + 0.001)


def incident_rows(stream: EventBatch, incident: dict) -> np.ndarray:
    """The events an incident covers: its product's at its store (collapse, shrinkage) or its till's lines."""
    (store,) = incident["entities"]
    rows = rows_of(stream, [store], incident["start"], incident["end"])
    part = incident["entity"][len(store) + 1:]
    column = "till" if incident["kind"] == "refund_till" else "sku"
    return rows[stream.categorical[column][rows] == part]


# --- determinism and resuming ---------------------------------------------------


def test_same_parameters_give_identical_events_and_another_seed_others(stream):
    helpers.check_same_parameters_give_identical_events(RetailSimulator, PARAMS, stream)


def test_days_are_the_stream_cut_at_midnight(sim, stream):
    helpers.check_days_are_the_stream_cut_at_midnight(sim, stream, DAYS)


@pytest.mark.parametrize("start_position", [0, 1, 9_999, 61_234, 123_457, 200_001])
def test_resuming_equals_the_uninterrupted_stream(stream, start_position):
    helpers.check_resuming(RetailSimulator, PARAMS, stream, start_position)


def test_generate_edge_cases(sim):
    helpers.check_generate_edge_cases(sim, "rt", [{"stores": 0}])


def test_registered_as_the_retail_scenario():
    assert simulator_class("retail") is RetailSimulator


# --- stream invariants ----------------------------------------------------------


def test_time_sorted_ids_unique_positions_contiguous(stream):
    helpers.check_stream_invariants(stream, "rt", INCIDENT_KINDS)


def test_columns_match_the_schema(stream):
    assert [f.name for f in FIELDS] == ["id", "ts", "store", "till", "sku", "kind", "quantity", "amount", "units_removed",
                                        "is_incident", "incident"]
    assert list(stream.numeric) == ["quantity", "amount", "units_removed"]
    assert list(stream.categorical) == ["till", "sku", "kind"]
    kind = stream.categorical["kind"]
    assert set(kind.tolist()) == {"sale", "refund", "count"}
    sale, refund, count = kind == "sale", kind == "refund", kind == "count"
    assert (stream.numeric["amount"][sale] > 0).all() and (stream.numeric["amount"][refund] < 0).all()
    assert (stream.numeric["quantity"][sale | refund] >= 1).all() and (stream.numeric["units_removed"][~count] == 0).all()
    assert (stream.categorical["till"][count] == "").all() and (stream.categorical["till"][~count] != "").all()
    assert set(stream.categorical["sku"].tolist()) == {p[0] for p in PRODUCTS}


def test_shelves_report_each_quarter_hour_while_the_store_is_open(sim, stream):
    first_day = stream.take(stream.times < sim.start_time + DAY)
    opens, closes = sim._hours(0)
    for s, store in enumerate(sim._store_names.tolist()):
        counts = first_day.take((first_day.keys == store) & (first_day.categorical["kind"] == "count"))
        quarters = round((closes[s] - opens[s]) / 900)
        assert len(counts) == quarters * len(PRODUCTS)
        lines = first_day.take((first_day.keys == store) & (first_day.categorical["kind"] != "count"))
        assert lines.times.min() >= opens[s] and lines.times.max() < closes[s]


def test_removals_follow_sales_outside_incidents(sim, stream):
    """Per product and day, units off the shelf equal units sold, but for baskets still in the aisles at closing."""
    first_day = stream.take(stream.times < sim.start_time + DAY)
    sold = first_day.categorical["kind"] == "sale"
    for store in sim._store_names.tolist()[:2]:
        for sku in ("milk-1l", "razor-blades"):
            mine = (first_day.keys == store) & (first_day.categorical["sku"] == sku)
            units_sold = first_day.numeric["quantity"][mine & sold].sum()
            removed = first_day.numeric["units_removed"][mine].sum()
            assert units_sold > 0 and abs(removed - units_sold) <= 0.05 * units_sold + 6


def test_daily_and_weekly_seasonality(sim, stream):
    legit = stream.take((stream.labels == 0) & (stream.categorical["kind"] == "sale"))
    hour = (legit.times % DAY) / 3600
    day = ((legit.times - sim.start_time) // DAY).astype(np.int64)  # 0 Thursday, 1 Friday, 2 Saturday, 3 Sunday
    assert np.sum((hour >= 17) & (hour < 18)) > 1.8 * np.sum((hour >= 15) & (hour < 16)) / 1.3  # the after-work peak
    assert np.sum(day == 2) > 1.2 * np.sum(day == 0) and np.sum(day == 3) < 0.8 * np.sum(day == 0)
    sunday = hour[day == 3]
    assert sunday.min() >= 10 and sunday.max() < 18


# --- incidents ------------------------------------------------------------------


def test_incident_table(sim, stream, table):
    helpers.check_incident_table(sim, PARAMS, stream, table, LIMITS, (8, 30))
    opens = {}
    for incident in table:
        (store,) = incident["entities"]
        assert incident["entity"].startswith(store + "/")
        index = int((incident["start"] - sim.start_time) // DAY)
        s = sim._store_names.tolist().index(store)
        o, c = sim._hours(index)
        assert o[s] <= incident["start"] <= c[s] - 1800, "incidents start while the store is open"
        opens[incident["kind"]] = True
    assert set(opens) == set(INCIDENT_KINDS)


def test_labels_are_exactly_the_incident_windows(stream, table):
    helpers.check_labels_are_the_incident_windows(stream, table, lambda incident: incident_rows(stream, incident), skip=None)


def test_incident_shapes(sim, stream, table):
    kind, quantity = stream.categorical["kind"], stream.numeric["quantity"]
    checked = dict.fromkeys(INCIDENT_KINDS, 0)
    for incident in table:
        rows = incident_rows(stream, incident)
        (store,) = incident["entities"]
        start, end = incident["start"], incident["end"]
        shift = np.floor((start - sim.start_time) / DAY) * DAY  # the same clock window on warm-up Thursday
        part = incident["entity"][len(store) + 1:]
        if incident["kind"] == "refund_till":
            if len(rows) < 60:
                continue
            usual = sim._refund_share[sim._store_names.tolist().index(store)]  # 1-2.5 % of a store's lines
            assert np.mean(kind[rows] == "refund") >= usual + 0.04
        else:
            before = rows_of(stream, [store], start - shift, end - shift)
            before = before[stream.categorical["sku"][before] == part]
            if np.sum(kind[before] == "sale") < 15:
                continue
            if incident["kind"] == "sales_collapse":
                assert np.sum(kind[rows] == "sale") <= 0.2 * np.sum(kind[before] == "sale")
            else:  # shrinkage: units off the shelf well beyond the units sold
                removed = stream.numeric["units_removed"][rows].sum()
                sold = quantity[rows][kind[rows] == "sale"].sum()
                assert removed - sold >= 10
        checked[incident["kind"]] += 1
    assert all(count >= 1 for count in checked.values()), checked


# --- spec, source, files, CLI ---------------------------------------------------


def test_from_spec_uses_every_parameter():
    spec = SimulatorSpec(kind="simulator", scenario="retail", stores=7, incident_rate=0.5, warmup_days=0.25, seed=5,
                         start="2025-06-01T00:00:00Z")
    sim = RetailSimulator.from_spec(spec)
    assert (sim.stores, sim.incident_rate, sim.warmup_days, sim.seed) == (7, 0.5, 0.25, 5)
    assert sim.start_time == 1748736000.0
    assert RetailSimulator.from_spec(SimulatorSpec(kind="simulator", scenario="retail")).incident_rate == 0.3
    assert_same(sim.generate(3_000), RetailSimulator(7, 0.5, 0.25, "2025-06-01T00:00:00Z", 5).generate(3_000))


def test_the_simulator_source_reads_and_seeks_the_retail_scenario():
    spec = SimulatorSpec(kind="simulator", scenario="retail", stores=3, incident_rate=2.0, warmup_days=0.1, seed=3)
    source = SimulatorSource(spec, max_events=50_000)
    expected = RetailSimulator.from_spec(spec).generate(50_000)
    assert_same(source.read(1_000).events, expected.take(slice(0, 1_000)))
    source.seek(20_000)
    parts = []
    while (batch := source.read(7_000)) is not None:
        parts.append(batch.events)
    assert_same(EventBatch.concat(parts), expected.take(slice(20_000, 50_000)))


@pytest.mark.parametrize("format", ["jsonl", "parquet"])
def test_write_events_round_trips(tmp_path, stream, format):
    helpers.check_write_round_trips(tmp_path / f"retail.{format}", stream, write_events, FIELDS)


def test_cli_writes_retail_events_and_the_incident_table(tmp_path):
    options = ["--scenario", "retail", "--stores", "3", "--incident-rate", "2", "--events", "100000", "--seed", "5"]
    data = helpers.check_cli(tmp_path / "retail.parquet", options, FIELDS, RetailSimulator(stores=3, incident_rate=2.0, seed=5))
    assert len(data["id"]) == 100_000 and len(set(data["store"])) == 3


# --- the reference spec ---------------------------------------------------------


def test_the_reference_spec_loads_and_its_packaged_copy_is_identical():
    spec = load_spec(ROOT / "examples" / "retail.yaml")
    assert spec.source.scenario == "retail" and spec.aggregate is not None
    assert [r.name for r in spec.rules] == ["product_stopped_selling", "shelf_draining_unsold", "till_refunds_stand_out"]
    assert (ROOT / "src" / "tocsin" / "specs" / "retail.yaml").read_bytes() == (ROOT / "examples" / "retail.yaml").read_bytes()


def test_a_short_run_of_the_reference_spec_flags_injected_incidents(tmp_path):
    """Six stores, two clean days then a day of incidents, replayed through examples/retail.yaml: the rules flag
    incidents on their store, and the till with fraudulent refunds in its first half hours."""
    from tocsin.engine.backtest import backtest

    sim = RetailSimulator(stores=6, incident_rate=1.5, warmup_days=2.0, seed=4)
    batch = sim.generate(sum(sim._day_size(i) for i in range(3)))
    path = tmp_path / "retail.parquet"
    write_events(batch, path)
    table = sim.incidents(float(batch.times[-1]) + 0.001)
    data = yaml.safe_load((ROOT / "examples" / "retail.yaml").read_text())
    data["detector"].update(warmup_events=100, train_window=100)
    data["store"]["url"] = f"sqlite:///{tmp_path / 'retail.db'}"
    report = backtest(parse_spec(data), path, "is_incident", incidents=table, catch_within=3_600.0, warmup_days=2.0)
    kinds = report["incidents"]
    assert sum(f["incidents"] for f in kinds.values()) == len(table) >= 5
    assert report["incident_recall"] >= 0.4, kinds
    assert kinds.get("refund_till", {"caught": 1})["caught"] >= 1


def test_the_reference_spec_readings_are_the_plain_per_store_half_hour_figures(stream):
    """The aggregate metrics the spec needs (a sum over the events matching `where`, its square-root transform, the
    worst till's refund share and refunded sum) equal a plain per-(store, half hour) computation."""
    from tocsin.engine.aggregate import Aggregator

    spec = load_spec(ROOT / "examples" / "retail.yaml")
    part = stream.take(slice(0, 60_000))
    numeric = dict(part.numeric)
    numeric["sale_line"] = (numeric["amount"] > 0).astype(float)
    numeric["drain"] = numeric["units_removed"] - numeric["quantity"] * numeric["sale_line"]
    numeric["refunded"] = np.maximum(-numeric["amount"], 0.0)
    events = EventBatch(ids=part.ids, keys=part.keys, times=part.times, numeric=numeric, categorical=part.categorical,
                        positions=part.positions, labels=part.labels)
    readings, late = Aggregator(spec.aggregate).fold(events, watermark=float(part.times[-1]) + 3_600)
    assert len(late) == 0 and len(readings) > 20
    bucket = np.floor(part.times / 1800) * 1800
    for row in range(0, len(readings), 7):
        store, start = readings.keys[row], readings.times[row]
        mine = (part.keys == store) & (bucket == start)
        milk = mine & (part.categorical["sku"] == "milk-1l")
        assert readings.numeric["sold_milk_1l"][row] == pytest.approx(2 * np.sqrt(numeric["sale_line"][milk].sum() + 0.375))
        eggs = mine & (part.categorical["sku"] == "eggs-10")
        assert readings.numeric["drain_eggs_10"][row] == pytest.approx(numeric["drain"][eggs].sum())
        share, refunded = [], []
        for till in set(part.categorical["till"][mine].tolist()):
            at = mine & (part.categorical["till"] == till)
            if at.sum() >= 5:
                share.append(np.mean(part.categorical["kind"][at] == "refund"))
                refunded.append(numeric["refunded"][at].sum())
        assert readings.numeric["worst_till_refunds"][row] == pytest.approx(max(share, default=0.0))
        assert readings.numeric["worst_till_refunded"][row] == pytest.approx(max(refunded, default=0.0))
