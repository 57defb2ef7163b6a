"""Tests for src/tocsin/simulate/sensors.py (and the sensors scenario of the simulator source and `tocsin simulate`)."""

from __future__ import annotations

import numpy as np
import pytest

from tests.simulate import helpers
from tests.simulate.helpers import DAY, assert_same, rows_of
from tocsin.batch import EventBatch
from tocsin.simulate import SENSOR_FIELDS, SENSOR_INCIDENT_KINDS, SensorSimulator, write_sensor_events
from tocsin.spec import SimulatorSource as SimulatorSpec

# 16 sensors (2 sites) reporting every 10 s: 138,240 events a day; ~8 incidents a day after warm-up
PARAMS = dict(sensors=16, incident_rate=0.5, warmup_days=1.0, seed=11)
DAYS = 5  # 2026-01-01 is a Thursday: Thursday to Monday, a weekend included
EVENT_KINDS = ("stuck_value", "drift", "spike")
LIMITS = {"stuck_value": (600, 3600), "drift": (3600, 21_600), "spike": (15, 45), "dropout": (300, 1800)}


@pytest.fixture(scope="module")
def sim() -> SensorSimulator:
    return SensorSimulator(**PARAMS)


@pytest.fixture(scope="module")
def stream(sim: SensorSimulator) -> EventBatch:
    """Five days of readings."""
    return sim.generate(sum(sim._day_size(i) for i in range(DAYS)))


@pytest.fixture(scope="module")
def table(sim: SensorSimulator, stream: EventBatch) -> list[dict]:
    return sim.incidents(float(stream.times[-1]) + 0.001)


def expected(sim: SensorSimulator, stream: EventBatch, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Noise-free temperature and vibration of healthy sensors at those rows."""
    index = {name: i for i, name in enumerate(sim._sensor_names.tolist())}
    return sim._expected(np.array([index[k] for k in stream.keys[rows].tolist()], dtype=np.int64), stream.times[rows])


def alone(table: list[dict], incident: dict) -> bool:
    """Whether no other incident overlaps this one on its sensor."""
    return not any(other is not incident and other["entity"] == incident["entity"] and other["start"] < incident["end"]
                   and incident["start"] < other["end"] for other in table)


# --- determinism and resuming ---------------------------------------------------


def test_same_parameters_give_identical_events_and_another_seed_others(stream):
    helpers.check_same_parameters_give_identical_events(SensorSimulator, PARAMS, stream)


def test_days_are_the_stream_cut_at_midnight(sim, stream):
    helpers.check_days_are_the_stream_cut_at_midnight(sim, stream, DAYS)


@pytest.mark.parametrize("start_position", [0, 1, 138_239, 138_240, 300_001, 550_000])
def test_resuming_equals_the_uninterrupted_stream(stream, start_position):
    helpers.check_resuming(SensorSimulator, PARAMS, stream, start_position)


@pytest.mark.parametrize("report_every", [47.0, 7.5])
def test_day_sizes_and_resuming_hold_for_any_report_interval(report_every):
    whole = helpers.check_any_report_interval(
        SensorSimulator, dict(sensors=6, report_every=report_every, incident_rate=3.0, warmup_days=0.0, seed=4))
    assert "spike" in set(whole.extra["incident"].tolist()), "a spike holds a reading whatever the interval"


def test_generate_edge_cases(sim):
    helpers.check_generate_edge_cases(sim, "sn", [dict(sensors=0), dict(report_every=0), dict(report_every=86_401)])
    assert len(SensorSimulator(sensors=2, report_every=86_400, incident_rate=5, warmup_days=0).generate(4)) == 4


# --- stream invariants ----------------------------------------------------------


def test_time_sorted_ids_unique_positions_contiguous(stream):
    helpers.check_stream_invariants(stream, "sn", SENSOR_INCIDENT_KINDS)


def test_every_sensor_reports_every_ten_seconds(sim, stream):
    first_day = stream.take(stream.times < sim.start_time + DAY)  # no incident, so no dropout, in warm-up
    assert len(first_day) == 16 * 8_640
    for name in sim._sensor_names[:4]:
        gaps = np.diff(first_day.times[first_day.keys == name])
        assert len(gaps) == 8_639 and 8 <= gaps.min() and gaps.max() <= 12


def test_columns_match_the_schema(sim, stream):
    assert [f.name for f in SENSOR_FIELDS] == ["id", "sensor", "ts", "temperature", "vibration", "site", "is_incident", "incident"]
    assert list(stream.numeric) == ["temperature", "vibration"] and list(stream.categorical) == ["site"]
    assert stream.numeric["vibration"].min() >= 0
    assert set(stream.keys.tolist()) == {f"sensor-{i:03d}" for i in range(16)}
    site_of = dict(zip(stream.keys[:1_000].tolist(), stream.categorical["site"][:1_000].tolist()))
    assert sorted(site_of.values()).count("site-00") == 8 and sorted(site_of.values()).count("site-01") == 8


def test_spec_defaults():
    sim = SensorSimulator.from_spec(SimulatorSpec(kind="simulator", scenario="sensors"))
    assert (sim.sensors, sim.report_every, sim.incident_rate, sim.warmup_days) == (40, 10.0, 0.1, 1.0)
    assert sim._day_size(0) == 345_600 and len(sim._site_names) == 5


# --- incidents ------------------------------------------------------------------


def test_incident_table(sim, stream, table):
    helpers.check_incident_table(sim, PARAMS, stream, table, LIMITS, (20, 50))
    assert all(incident["entities"] == [incident["entity"]] for incident in table)


def test_labels_are_exactly_the_incident_windows(stream, table):
    helpers.check_labels_are_the_incident_windows(
        stream, table, lambda incident: rows_of(stream, incident["entities"], incident["start"], incident["end"]), skip="dropout")


def test_a_dropout_sends_nothing_during_its_incident(sim, stream, table):
    helpers.check_silences(stream, table, "dropout", 10.0, sim._jitter)


def test_incident_shapes(sim, stream, table):
    temperature, vibration = stream.numeric["temperature"], stream.numeric["vibration"]
    checked = dict.fromkeys(EVENT_KINDS, 0)
    for incident in table:
        if incident["kind"] == "dropout" or not alone(table, incident):
            continue
        rows = rows_of(stream, incident["entities"], incident["start"], incident["end"])
        usual_temperature, usual_vibration = expected(sim, stream, rows)
        if incident["kind"] == "stuck_value":  # the exact same reading, over and over
            assert len(set(temperature[rows].tolist())) == 1 and len(set(vibration[rows].tolist())) == 1
            assert len(rows) >= 55
        elif incident["kind"] == "drift":  # away from the usual, further and further
            off = temperature[rows] - usual_temperature
            last = off[-len(rows) // 10:].mean()
            assert abs(last) >= 2.5 and np.corrcoef(stream.times[rows], np.sign(last) * off)[0, 1] > 0.8
            after = rows_of(stream, incident["entities"], incident["end"], incident["end"] + 600)
            if len(after) and not stream.labels[after].any():
                assert np.abs(temperature[after] - expected(sim, stream, after)[0]).max() < 1.5, "recalibrated"
        else:  # a spike: every reading far off
            assert 1 <= len(rows) <= 5
            assert np.all((np.abs(temperature[rows] - usual_temperature) >= 14) | (vibration[rows] >= 3 * usual_vibration))
        checked[incident["kind"]] += 1
    assert all(count >= 3 for count in checked.values()), checked


def test_legit_readings_never_stick(stream):
    """A healthy sensor's noise makes runs of one exact reading short: a stuck run is a sign."""
    legit = stream.take(stream.labels == 0)
    for sensor in sorted(set(legit.keys[:200].tolist()))[:8]:
        values = legit.numeric["temperature"][legit.keys == sensor]
        changes = np.flatnonzero(np.diff(values) != 0)
        assert np.diff(changes).max() < 20


# --- normal behaviour -----------------------------------------------------------


def test_daily_temperature_cycle_and_shift_vibration(sim, stream):
    legit = stream.take(stream.labels == 0)
    site_index = {name: i for i, name in enumerate(sim._site_names.tolist())}
    site = np.array([site_index[s] for s in legit.categorical["site"].tolist()])
    local = legit.times + sim._utc_offset[site]
    hour = (local % DAY) / 3600
    weekday = ((local // DAY).astype(np.int64) + 3) % 7
    temperature, vibration = legit.numeric["temperature"], legit.numeric["vibration"]
    for s in range(len(sim._site_names)):
        mine = site == s
        warm, cold = mine & (hour >= 13) & (hour < 17), mine & (hour >= 1) & (hour < 5)
        assert temperature[warm].mean() > temperature[cold].mean() + 2.5
    shift = (weekday < 5) & (hour >= 7) & (hour < 21)
    idle = (hour < 5) | (weekday >= 5)
    assert np.median(vibration[shift]) > 1.8 * np.median(vibration[idle])


def test_dock_sensors_dip_at_the_same_time_every_day(sim, stream):
    checked = 0
    for i in np.flatnonzero(sim._has_dock).tolist():
        name, length = sim._sensor_names[i], sim._dock_length[i]
        offset = sim._utc_offset[sim._site[i]]
        for index in range(DAYS):
            opens = sim.start_time + index * DAY + sim._dock_start[i] - offset  # local start, in UTC
            middle = rows_of(stream, [name], opens + length / 3, opens + 2 * length / 3)
            before = rows_of(stream, [name], opens - length, opens)
            after = rows_of(stream, [name], opens + length, opens + 2 * length)
            near = np.concatenate([before, middle, after])
            if len(middle) == 0 or len(before) == 0 or len(after) == 0 or stream.labels[near].any():
                continue
            t = stream.numeric["temperature"]
            assert (t[before].mean() + t[after].mean()) / 2 - t[middle].mean() >= 1.0
            checked += 1
    assert checked >= 10


# --- spec, source, files, CLI ---------------------------------------------------


def test_from_spec_uses_every_parameter():
    spec = SimulatorSpec(kind="simulator", scenario="sensors", sensors=7, report_every="30s", incident_rate=0.5,
                         warmup_days=0.25, seed=5, start="2025-06-01T00:00:00Z")
    sim = SensorSimulator.from_spec(spec)
    assert (sim.sensors, sim.report_every, sim.incident_rate, sim.warmup_days, sim.seed) == (7, 30.0, 0.5, 0.25, 5)
    first, end = sim._day_slots(0)
    assert (end - first).tolist() == [2_880] * 7 and sim.start_time == 1748736000.0
    assert_same(sim.generate(3_000), SensorSimulator(7, 30.0, 0.5, 0.25, "2025-06-01T00:00:00Z", 5).generate(3_000))


def test_the_simulator_source_reads_and_seeks_the_sensors_scenario():
    spec = SimulatorSpec(kind="simulator", scenario="sensors", sensors=10, report_every="20s", incident_rate=1.0,
                         warmup_days=0.5, seed=3)
    helpers.check_source_reads_and_seeks(spec, 40_000, 25_000)


@pytest.mark.parametrize("format", ["jsonl", "csv", "parquet"])
def test_write_events_round_trips(tmp_path, stream, format):
    helpers.check_write_round_trips(tmp_path / f"sensors.{format}", stream, write_sensor_events, SENSOR_FIELDS)


def test_cli_writes_sensor_events_and_the_incident_table(tmp_path):
    options = ["--scenario", "sensors", "--sensors", "8", "--incident-rate", "1", "--events", "100000", "--seed", "5"]
    data = helpers.check_cli(tmp_path / "sensors.parquet", options, SENSOR_FIELDS, SensorSimulator(sensors=8, incident_rate=1.0, seed=5))
    assert len(data["id"]) == 100_000 and set(data["site"]) == {"site-00"}
