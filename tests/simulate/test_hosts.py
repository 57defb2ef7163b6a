"""Tests for src/tocsin/simulate/hosts.py (and the hosts scenario of the simulator source and `tocsin simulate`)."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.csv
import pyarrow.json
import pyarrow.parquet
import pytest
from typer.testing import CliRunner

from tocsin.batch import EventBatch
from tocsin.cli.main import app
from tocsin.simulate import HOST_FIELDS, INCIDENT_KINDS, HostMetricsSimulator, write_host_events
from tocsin.sources.simulator import SimulatorSource
from tocsin.spec import SimulatorSource as SimulatorSpec

DAY = 86_400.0
# 60 hosts reporting each minute: 86,400 events a day; ~9 incidents a day after warm-up
PARAMS = dict(hosts=60, racks=6, incident_rate=0.15, warmup_days=1.0, seed=11)
DAYS = 5  # 2026-01-01 is a Thursday: Thursday to Monday, a weekend included
EVENT_KINDS = ("cpu_spike", "memory_leak", "network_saturation", "rack_degraded")


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


def assert_same(a: EventBatch, b: EventBatch) -> None:
    """Every column of the two batches is equal, value for value."""
    assert len(a) == len(b)
    for name in ("ids", "keys", "times", "positions", "labels"):
        assert getattr(a, name).tolist() == getattr(b, name).tolist(), name
    for group in ("numeric", "categorical", "extra"):
        columns_a, columns_b = getattr(a, group), getattr(b, group)
        assert list(columns_a) == list(columns_b), group
        for name in columns_a:
            assert columns_a[name].tolist() == columns_b[name].tolist(), name


def rows_of(stream: EventBatch, hosts: list[str], start: float, end: float) -> np.ndarray:
    """Rows of ``hosts`` with a time in [start, end)."""
    return np.flatnonzero(np.isin(stream.keys, hosts) & (stream.times >= start) & (stream.times < end))


# --- determinism and resuming ---------------------------------------------------


def test_same_parameters_give_identical_events_and_another_seed_others(stream):
    assert_same(stream.take(slice(0, 100_000)), HostMetricsSimulator(**PARAMS).generate(100_000))
    other = HostMetricsSimulator(**{**PARAMS, "seed": 12}).generate(5_000)
    assert other.keys.tolist() != stream.keys[:5_000].tolist()


def test_days_are_the_stream_cut_at_midnight(sim, stream):
    cut = 0
    for index in range(DAYS):
        day = sim.day(index)
        assert len(day) == sim._day_size(index)
        assert_same(day, stream.take(slice(cut, cut + len(day))))
        assert day.times.min() >= sim.start_time + index * DAY and day.times.max() < sim.start_time + (index + 1) * DAY
        cut += len(day)
    assert cut == len(stream)


@pytest.mark.parametrize("start_position", [0, 1, 86_399, 86_400, 123_457, 250_001, 333_333])
def test_resuming_equals_the_uninterrupted_stream(stream, start_position):
    resumed = HostMetricsSimulator(**PARAMS)  # fresh: no cached day offsets
    batches = list(resumed.batches(7_777, start_position=start_position, max_events=20_000))
    assert [len(b) for b in batches] == [7_777, 7_777, 4_446]
    assert_same(EventBatch.concat(batches), stream.take(slice(start_position, start_position + 20_000)))


@pytest.mark.parametrize("report_every", [47.0, 7.5])
def test_day_sizes_and_resuming_hold_for_any_report_interval(report_every):
    params = dict(hosts=12, racks=3, report_every=report_every, incident_rate=2.0, warmup_days=0.0, seed=4)
    sim = HostMetricsSimulator(**params)
    days = [sim.day(i) for i in range(3)]
    assert [len(d) for d in days] == [sim._day_size(i) for i in range(3)]
    whole = EventBatch.concat(days)
    assert whole.positions.tolist() == list(range(len(whole))) and np.all(np.diff(whole.times) >= 0)
    assert any(i["kind"] == "silent_host" for i in sim.incidents(sim.start_time + 3 * DAY))
    position = len(days[0]) - 100
    resumed = next(HostMetricsSimulator(**params).batches(len(days[1]), start_position=position))
    assert_same(resumed, whole.take(slice(position, position + len(days[1]))))


def test_generate_edge_cases(sim):
    assert len(sim.generate(0)) == 0
    assert sim.generate(1).ids.tolist() == ["hm000000000000"]
    with pytest.raises(ValueError):
        sim.day(-1)
    with pytest.raises(ValueError):
        next(sim.batches(0))
    for bad in (dict(hosts=0), dict(racks=0), dict(report_every=0), dict(incident_rate=-1), dict(warmup_days=-1)):
        with pytest.raises(ValueError):
            HostMetricsSimulator(**bad)


# --- stream invariants ----------------------------------------------------------


def test_time_sorted_ids_unique_positions_contiguous(stream):
    assert np.all(np.diff(stream.times) >= 0)
    assert stream.positions.tolist() == list(range(len(stream)))
    assert stream.ids.tolist() == [f"hm{p:012d}" for p in range(len(stream))]


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
    assert all(column.dtype == np.float64 for column in stream.numeric.values())
    assert stream.labels.dtype == np.int8
    assert stream.numeric["cpu"].min() >= 0 and stream.numeric["cpu"].max() <= 100
    assert stream.numeric["memory"].min() >= 0 and stream.numeric["memory"].max() <= 100
    assert stream.numeric["net_mbps"].min() >= 0
    assert set(stream.categorical["role"].tolist()) == {"web", "db", "cache", "batch"}
    assert set(stream.categorical["rack"].tolist()) == {f"rack-{r:02d}" for r in range(6)}
    hosts = set(stream.keys.tolist())
    assert len(hosts) == 60
    assert all(k.split("-")[0] == role for k, role in zip(stream.keys[:500], stream.categorical["role"][:500]))
    assert (stream.labels == 1).tolist() == (stream.extra["incident"] != "").tolist()
    assert set(stream.extra["incident"].tolist()) <= {"", *INCIDENT_KINDS}


# --- incidents ------------------------------------------------------------------


def test_incident_table(sim, stream, table):
    warmup_end = sim.start_time + DAY
    assert {i["kind"] for i in table} == set(INCIDENT_KINDS)
    assert 25 <= len(table) <= 50, "about incident_rate x hosts a day after warm-up"
    assert [i["start"] for i in table] == sorted(i["start"] for i in table)
    assert all(warmup_end <= i["start"] < i["end"] and i["start"] <= stream.times[-1] for i in table)
    assert stream.labels[stream.times < warmup_end].sum() == 0
    durations = {kind: [i["end"] - i["start"] for i in table if i["kind"] == kind] for kind in INCIDENT_KINDS}
    limits = {"cpu_spike": (300, 1800), "memory_leak": (3600, 14400), "network_saturation": (600, 3600),
              "silent_host": (600, 3600), "rack_degraded": (900, 3600)}
    for kind, (low, high) in limits.items():
        assert low <= min(durations[kind]) and max(durations[kind]) <= high, kind
    for incident in table:
        assert isinstance(incident["start"], float) and isinstance(incident["hosts"], list)
        if incident["kind"] == "rack_degraded":
            assert incident["entity"].startswith("rack-") and len(incident["hosts"]) == 10
            rack_of = dict(zip(stream.keys[:60_000].tolist(), stream.categorical["rack"][:60_000].tolist()))
            assert {rack_of[h] for h in incident["hosts"]} == {incident["entity"]}
        else:
            assert incident["hosts"] == [incident["entity"]]
    # computed from the plans alone, the same in a fresh simulator; a later cut only adds incidents
    fresh = HostMetricsSimulator(**PARAMS)
    assert fresh.incidents(float(stream.times[-1]) + 0.001) == table
    assert fresh.incidents(sim.start_time + 3 * DAY) == [i for i in table if i["start"] < sim.start_time + 3 * DAY]
    assert fresh.incidents("2026-01-03T00:00:00Z") == fresh.incidents(sim.start_time + 2 * DAY)


def test_labels_are_exactly_the_incident_windows(stream, table):
    expected = np.zeros(len(stream), dtype=bool)
    kinds_at: dict[int, set[str]] = {}
    for incident in table:
        if incident["kind"] == "silent_host":
            continue
        rows = rows_of(stream, incident["hosts"], incident["start"], incident["end"])
        assert len(rows) > 0, incident
        expected[rows] = True
        for row in rows.tolist():
            kinds_at.setdefault(row, set()).add(incident["kind"])
    assert stream.labels.astype(bool).tolist() == expected.tolist()
    assert all(stream.extra["incident"][row] in kinds for row, kinds in kinds_at.items())
    assert set(stream.extra["incident"].tolist()) == {"", *EVENT_KINDS}


def test_a_silent_host_sends_nothing_during_its_incident(sim, stream, table):
    silent = [i for i in table if i["kind"] == "silent_host"]
    assert len(silent) >= 3
    end_of_data = float(stream.times[-1])
    for incident in silent:
        host = incident["entity"]
        times = stream.times[stream.keys == host]
        assert not ((times >= incident["start"]) & (times <= incident["end"])).any()
        before, after = times[times < incident["start"]], times[times > incident["end"]]
        assert incident["start"] - before[-1] <= 60 + 2 * 3.0  # silent from about the start…
        if incident["end"] + 600 < end_of_data:
            assert after[0] - incident["end"] <= 60 + 2 * 3.0  # …to about the end


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
    assert SimulatorSpec(kind="simulator").scenario == "transactions"
    with pytest.raises(ValueError):
        SimulatorSpec(kind="simulator", scenario="iot")


def test_the_simulator_source_reads_and_seeks_the_hosts_scenario():
    spec = SimulatorSpec(kind="simulator", scenario="hosts", hosts=20, racks=4, incident_rate=0.5, warmup_days=0.5, seed=3)
    expected = HostMetricsSimulator.from_spec(spec).generate(40_000)
    source = SimulatorSource(spec, max_events=40_000)
    assert source.name == "simulator:hosts:3" and isinstance(source.simulator, HostMetricsSimulator)
    first = source.read(1_000)
    assert first.positions.tolist() == list(range(1_000)) and first.next_position == 1_000
    assert_same(first.events, expected.take(slice(0, 1_000)))
    source.seek(25_000)
    parts = []
    while (batch := source.read(4_000)) is not None:
        parts.append(batch.events)
    assert_same(EventBatch.concat(parts), expected.take(slice(25_000, 40_000)))
    assert expected.labels[25_000:].sum() > 0


def read_back(path, format: str) -> dict[str, list]:
    """A written file's columns, read with the types of :data:`HOST_FIELDS`."""
    arrow_type = {"float": pa.float64(), "int8": pa.int8(), "str": pa.string()}
    schema = pa.schema([(field.name, arrow_type[field.type]) for field in HOST_FIELDS])
    if format == "jsonl":
        table = pyarrow.json.read_json(path, parse_options=pyarrow.json.ParseOptions(explicit_schema=schema))
    elif format == "csv":
        table = pyarrow.csv.read_csv(path, convert_options=pyarrow.csv.ConvertOptions(column_types=schema))
    else:
        table = pyarrow.parquet.read_table(path)
    assert table.schema.names == schema.names and table.schema.types == schema.types
    return table.to_pydict()


@pytest.mark.parametrize("format", ["jsonl", "csv", "parquet"])
def test_write_events_round_trips(tmp_path, stream, format):
    batch = EventBatch.concat([stream.take(slice(0, 1_000)), stream.take(np.flatnonzero(stream.labels == 1)[:200])])
    path = tmp_path / f"hosts.{format}"
    write_host_events(batch, path)
    data = read_back(path, format)
    assert data["id"] == batch.ids.tolist() and data["host"] == batch.keys.tolist() and data["ts"] == batch.times.tolist()
    for name in ("cpu", "memory", "net_mbps"):
        assert data[name] == batch.numeric[name].tolist()
    for name in ("rack", "role"):
        assert data[name] == batch.categorical[name].tolist()
    assert data["is_incident"] == batch.labels.tolist() and sum(data["is_incident"]) == 200
    assert data["incident"] == batch.extra["incident"].tolist()


@pytest.mark.parametrize("suffix", ["jsonl", "parquet"])
def test_cli_writes_host_events_and_the_incident_table(tmp_path, suffix):
    out = tmp_path / f"hosts.{suffix}"
    args = ["simulate", "--scenario", "hosts", "--hosts", "20", "--incident-rate", "0.5", "--events", "60000", "--seed", "5",
            "--out", str(out)]
    result = CliRunner().invoke(app, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    data = read_back(out, suffix)
    assert len(data["id"]) == 60_000 and set(data["role"]) <= {"web", "db", "cache", "batch"}
    written = json.loads((tmp_path / f"hosts.{suffix}.incidents.json").read_text())
    assert written["events"] == 60_000 and (written["from"], written["to"]) == (data["ts"][0], data["ts"][-1])
    sim = HostMetricsSimulator(hosts=20, incident_rate=0.5, seed=5)
    assert written["incidents"] == sim.incidents(data["ts"][-1] + 0.001) and len(written["incidents"]) >= 3
    assert all(i["start"] <= written["to"] for i in written["incidents"])
    assert sum(data["is_incident"]) > 0 and "incidents" in result.output
