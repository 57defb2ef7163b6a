"""Tests for src/tocsin/simulate/hosts.py (and the hosts scenario of the simulator source and `tocsin simulate`)."""

from __future__ import annotations

import numpy as np
import pytest

from tests.simulate import helpers
from tests.simulate.helpers import DAY, assert_same, rows_of
from tocsin.batch import EventBatch
from tocsin.simulate import HOST_FIELDS, INCIDENT_KINDS, HostMetricsSimulator, write_host_events
from tocsin.spec import SimulatorSource as SimulatorSpec

# 60 hosts reporting each minute: 86,400 events a day; ~9 incidents a day after warm-up
PARAMS = dict(hosts=60, racks=6, incident_rate=0.15, warmup_days=1.0, seed=11)
DAYS = 5  # 2026-01-01 is a Thursday: Thursday to Monday, a weekend included
LIMITS = {"cpu_spike": (300, 1800), "memory_leak": (3600, 14400), "network_saturation": (600, 3600),
          "silent_host": (600, 3600), "rack_degraded": (900, 3600)}


@pytest.fixture(scope="module")
def sim() -> HostMetricsSimulator:
    return HostMetricsSimulator(**PARAMS)


@pytest.fixture(scope="module")
def stream(sim: HostMetricsSimulator) -> EventBatch:
    """Five days of readings."""
    return sim.generate(sum(sim._day_size(i) for i in range(DAYS)))


@pytest.fixture(scope="module")
def table(sim: HostMetricsSimulator, stream: EventBatch) -> list[dict]:
    return sim.incidents(float(stream.times[-1]) + 0.001)


# --- determinism and resuming ---------------------------------------------------


def test_same_parameters_give_identical_events_and_another_seed_others(stream):
    helpers.check_same_parameters_give_identical_events(HostMetricsSimulator, PARAMS, stream)


def test_days_are_the_stream_cut_at_midnight(sim, stream):
    helpers.check_days_are_the_stream_cut_at_midnight(sim, stream, DAYS)


@pytest.mark.parametrize("start_position", [0, 1, 86_399, 86_400, 123_457, 250_001, 333_333])
def test_resuming_equals_the_uninterrupted_stream(stream, start_position):
    helpers.check_resuming(HostMetricsSimulator, PARAMS, stream, start_position)


@pytest.mark.parametrize("report_every", [47.0, 7.5])
def test_day_sizes_and_resuming_hold_for_any_report_interval(report_every):
    helpers.check_any_report_interval(
        HostMetricsSimulator, dict(hosts=12, racks=3, report_every=report_every, incident_rate=2.0, warmup_days=0.0, seed=4))


def test_generate_edge_cases(sim):
    helpers.check_generate_edge_cases(sim, "hm", [dict(hosts=0), dict(racks=0), dict(report_every=0)])


# --- stream invariants ----------------------------------------------------------


def test_time_sorted_ids_unique_positions_contiguous(stream):
    helpers.check_stream_invariants(stream, "hm", INCIDENT_KINDS)


def test_every_host_reports_every_minute(sim, stream):
    first_day = stream.take(stream.times < sim.start_time + DAY)  # no incident, so no silence, in warm-up
    assert len(first_day) == 60 * 1_440
    for host in ("web", "db", "cache", "batch"):
        name = next(k for k in sim._host_names if k.startswith(host))
        gaps = np.diff(first_day.times[first_day.keys == name])
        assert len(gaps) == 1_439 and 56 <= gaps.min() and gaps.max() <= 64


def test_columns_match_the_schema(sim, stream):
    assert [f.name for f in HOST_FIELDS] == [
        "id", "host", "ts", "cpu", "memory", "net_mbps", "rack", "role", "is_incident", "incident",
    ]
    assert list(stream.numeric) == ["cpu", "memory", "net_mbps"] and list(stream.categorical) == ["rack", "role"]
    assert stream.numeric["cpu"].min() >= 0 and stream.numeric["cpu"].max() <= 100
    assert stream.numeric["memory"].min() >= 0 and stream.numeric["memory"].max() <= 100
    assert stream.numeric["net_mbps"].min() >= 0
    assert set(stream.categorical["role"].tolist()) == {"web", "db", "cache", "batch"}
    assert set(stream.categorical["rack"].tolist()) == {f"rack-{r:02d}" for r in range(6)}
    hosts = set(stream.keys.tolist())
    assert len(hosts) == 60
    assert all(k.split("-")[0] == role for k, role in zip(stream.keys[:500], stream.categorical["role"][:500]))


# --- incidents ------------------------------------------------------------------


def test_incident_table(sim, stream, table):
    helpers.check_incident_table(sim, PARAMS, stream, table, LIMITS, (25, 50))
    for incident in table:
        if incident["kind"] == "rack_degraded":
            assert incident["entity"].startswith("rack-") and len(incident["hosts"]) == 10
            rack_of = dict(zip(stream.keys[:60_000].tolist(), stream.categorical["rack"][:60_000].tolist()))
            assert {rack_of[h] for h in incident["hosts"]} == {incident["entity"]}
        else:
            assert incident["hosts"] == [incident["entity"]]


def test_labels_are_exactly_the_incident_windows(stream, table):
    helpers.check_labels_are_the_incident_windows(
        stream, table, lambda incident: rows_of(stream, incident["hosts"], incident["start"], incident["end"]), skip="silent_host")


def test_a_silent_host_sends_nothing_during_its_incident(sim, stream, table):
    helpers.check_silences(stream, table, "silent_host", 60.0, sim._jitter)


def test_incident_shapes(stream, table):
    cpu, memory, net = (stream.numeric[name] for name in ("cpu", "memory", "net_mbps"))
    labels = stream.labels.astype(bool)
    for incident in table:
        hosts, start, end = incident["hosts"], incident["start"], incident["end"]
        rows = rows_of(stream, hosts, start, end)
        before = rows_of(stream, hosts, start - 1_800, start)
        before = before[~labels[before]]
        kind = incident["kind"]
        if kind == "cpu_spike":
            assert (cpu[rows] >= 90).all()
        elif kind == "memory_leak":
            assert np.corrcoef(stream.times[rows], memory[rows])[0, 1] > 0.9
            assert memory[rows][-1] >= 85
            after = rows_of(stream, hosts, end, end + 600)
            if len(after) and not labels[after].any():
                assert memory[after].max() < memory[rows][-1] - 10, "the leak resets"
        elif kind == "network_saturation" and len(before):
            assert np.median(net[rows]) >= 3 * np.median(net[before])
        elif kind == "rack_degraded":
            assert len(set(stream.keys[rows].tolist())) == len(hosts)
            inside = ~np.isin(stream.extra["incident"][rows], ["cpu_spike"])
            assert cpu[rows][inside].mean() >= cpu[before].mean() + 15
            assert net[rows][inside].mean() <= 0.6 * net[before].mean()


# --- normal behaviour -----------------------------------------------------------


def clock(sim, stream) -> tuple[np.ndarray, np.ndarray]:
    hour = (stream.times % DAY) / 3600
    weekday = ((stream.times // DAY).astype(np.int64) + 3) % 7  # 0 = Monday
    return hour, weekday


def test_daily_and_weekly_seasonality(sim, stream):
    legit = stream.take(stream.labels == 0)
    hour, weekday = clock(sim, legit)
    cpu, role = legit.numeric["cpu"], legit.categorical["role"]
    business, night, weekend = (hour >= 10) & (hour < 17), hour < 5, weekday >= 5
    assert cpu[business & ~weekend].mean() > 2 * cpu[night & ~weekend].mean()
    assert cpu[business & weekend].mean() < 0.75 * cpu[business & ~weekend].mean()
    for name in ("web", "db", "cache"):
        of_role = role == name
        assert cpu[of_role & business & ~weekend].mean() > 1.5 * cpu[of_role & night].mean(), name
        net = legit.numeric["net_mbps"]
        assert net[of_role & business & ~weekend].mean() > 1.5 * net[of_role & night & ~weekend].mean(), name


def test_levels_depend_on_the_role(stream):
    legit = stream.take(stream.labels == 0)
    means = {role: legit.numeric["memory"][legit.categorical["role"] == role].mean() for role in ("web", "db", "cache", "batch")}
    assert means["batch"] < means["web"] < means["db"] < means["cache"]


def test_batch_hosts_run_a_nightly_job_at_the_same_time_every_day(sim, stream):
    hour, _ = clock(sim, stream)
    batch_hosts = sorted({k for k in stream.keys[:10_000].tolist() if k.startswith("batch-")})
    checked = 0
    for host in batch_hosts:
        mine = stream.keys == host
        busy_hours = set()
        for day in range(DAYS):
            today = mine & (stream.times >= sim.start_time + day * DAY) & (stream.times < sim.start_time + (day + 1) * DAY)
            if stream.labels[today & (hour < 6)].any():
                continue  # an incident in the small hours hides the job
            busy = today & (stream.labels == 0) & (stream.numeric["cpu"] >= 50)
            assert 15 <= busy.sum() <= 50, (host, day)  # a 20-45 minute job, a stray blip at most
            busy_hours.add(round(float(np.median(hour[busy])), 1))
            assert 1 <= np.median(hour[busy]) <= 5.5  # starts 01:00-04:45
        assert len(busy_hours) == 1, (host, busy_hours)
        checked += 1
    assert checked >= 5


# --- spec, source, files, CLI ---------------------------------------------------


def test_from_spec_uses_every_parameter():
    spec = SimulatorSpec(kind="simulator", scenario="hosts", hosts=7, racks=2, report_every="30s", incident_rate=0.5,
                         warmup_days=0.25, seed=5, start="2025-06-01T00:00:00Z")
    sim = HostMetricsSimulator.from_spec(spec)
    assert (sim.hosts, sim.racks, sim.report_every, sim.incident_rate, sim.warmup_days, sim.seed) == (7, 2, 30.0, 0.5, 0.25, 5)
    assert sim._day_size(0) == 7 * 2_880 and sim.start_time == 1748736000.0
    assert_same(sim.generate(3_000), HostMetricsSimulator(7, 2, 30.0, 0.5, 0.25, "2025-06-01T00:00:00Z", 5).generate(3_000))
    default = HostMetricsSimulator.from_spec(SimulatorSpec(kind="simulator", scenario="hosts"))  # null: the scenario's defaults
    assert (default.hosts, default.report_every, default.incident_rate) == (200, 60.0, 0.03)
    assert SimulatorSpec(kind="simulator").scenario == "transactions"
    with pytest.raises(ValueError):
        SimulatorSpec(kind="simulator", scenario="iot")


def test_the_simulator_source_reads_and_seeks_the_hosts_scenario():
    spec = SimulatorSpec(kind="simulator", scenario="hosts", hosts=20, racks=4, incident_rate=0.5, warmup_days=0.5, seed=3)
    helpers.check_source_reads_and_seeks(spec, 40_000, 25_000)


@pytest.mark.parametrize("format", ["jsonl", "csv", "parquet"])
def test_write_events_round_trips(tmp_path, stream, format):
    helpers.check_write_round_trips(tmp_path / f"hosts.{format}", stream, write_host_events, HOST_FIELDS)


@pytest.mark.parametrize("suffix", ["jsonl", "parquet"])
def test_cli_writes_host_events_and_the_incident_table(tmp_path, suffix):
    options = ["--scenario", "hosts", "--hosts", "20", "--incident-rate", "0.5", "--events", "60000", "--seed", "5"]
    data = helpers.check_cli(tmp_path / f"hosts.{suffix}", options, HOST_FIELDS, HostMetricsSimulator(hosts=20, incident_rate=0.5, seed=5))
    assert len(data["id"]) == 60_000 and set(data["role"]) <= {"web", "db", "cache", "batch"}
