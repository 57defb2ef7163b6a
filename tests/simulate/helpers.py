"""What the tests of the incident simulators (hosts, requests, sensors) share: the checks every one of them
passes, and comparing batches, selecting rows, reading written files back."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv
import pyarrow.json
import pyarrow.parquet
import pytest
from typer.testing import CliRunner

from tocsin.batch import EventBatch
from tocsin.cli.main import app
from tocsin.simulate import FieldInfo
from tocsin.simulate.daily import IncidentSimulator, ScheduledSimulator, field_columns
from tocsin.sources.simulator import SimulatorSource
from tocsin.spec import SimulatorSource as SimulatorSpec

DAY = 86_400.0


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


def rows_of(stream: EventBatch, keys: list[str], start: float, end: float) -> np.ndarray:
    """Rows of the entities ``keys`` with a time in [start, end)."""
    return np.flatnonzero(np.isin(stream.keys, keys) & (stream.times >= start) & (stream.times < end))


def read_back(path, format: str, fields: tuple[FieldInfo, ...]) -> dict[str, list]:
    """A written file's columns, read with the types of ``fields`` (and checked to have them)."""
    arrow_type = {"float": pa.float64(), "int": pa.int64(), "int8": pa.int8(), "bool": pa.bool_(), "str": pa.string()}
    schema = pa.schema([(field.name, arrow_type[field.type]) for field in fields])
    if format == "jsonl":
        table = pyarrow.json.read_json(path, parse_options=pyarrow.json.ParseOptions(explicit_schema=schema))
    elif format == "csv":
        table = pyarrow.csv.read_csv(path, convert_options=pyarrow.csv.ConvertOptions(column_types=schema))
    else:
        table = pyarrow.parquet.read_table(path)
    assert table.schema.names == schema.names and table.schema.types == schema.types
    return table.to_pydict()


# --- determinism and resuming ---------------------------------------------------


def check_same_parameters_give_identical_events(simulator: type[IncidentSimulator], params: dict, stream: EventBatch) -> None:
    """The same parameters give the same events; another seed other ones."""
    assert_same(stream.take(slice(0, 100_000)), simulator(**params).generate(100_000))
    other = simulator(**{**params, "seed": params["seed"] + 1}).generate(5_000)
    assert other.keys.tolist() != stream.keys[:5_000].tolist() or other.times.tolist() != stream.times[:5_000].tolist()


def check_days_are_the_stream_cut_at_midnight(sim: IncidentSimulator, stream: EventBatch, days: int) -> None:
    cut = 0
    for index in range(days):
        day = sim.day(index)
        assert len(day) == sim._day_size(index)
        assert_same(day, stream.take(slice(cut, cut + len(day))))
        assert day.times.min() >= sim.start_time + index * DAY and day.times.max() < sim.start_time + (index + 1) * DAY
        cut += len(day)
    assert cut == len(stream)


def check_resuming(simulator: type[IncidentSimulator], params: dict, stream: EventBatch, start_position: int) -> None:
    """A fresh simulator (no cached day offsets) resumed at ``start_position`` continues the stream exactly."""
    batches = list(simulator(**params).batches(7_777, start_position=start_position, max_events=20_000))
    assert [len(b) for b in batches] == [7_777, 7_777, 4_446]
    assert_same(EventBatch.concat(batches), stream.take(slice(start_position, start_position + 20_000)))


def check_any_report_interval(simulator: type[ScheduledSimulator], params: dict) -> EventBatch:
    """Day sizes, order and resuming hold with silences at any report interval; returns the first three days."""
    sim = simulator(**params)
    days = [sim.day(i) for i in range(3)]
    assert [len(d) for d in days] == [sim._day_size(i) for i in range(3)]
    whole = EventBatch.concat(days)
    assert whole.positions.tolist() == list(range(len(whole))) and np.all(np.diff(whole.times) >= 0)
    silence = simulator.INCIDENT_KINDS[simulator.SILENCE]
    assert any(i["kind"] == silence for i in sim.incidents(sim.start_time + 3 * DAY))
    position = len(days[0]) - 100
    resumed = next(simulator(**params).batches(len(days[1]), start_position=position))
    assert_same(resumed, whole.take(slice(position, position + len(days[1]))))
    return whole


def check_generate_edge_cases(sim: IncidentSimulator, prefix: str, bad: list[dict]) -> None:
    assert len(sim.generate(0)) == 0
    assert sim.generate(1).ids.tolist() == [f"{prefix}000000000000"]
    with pytest.raises(ValueError):
        sim.day(-1)
    with pytest.raises(ValueError):
        next(sim.batches(0))
    for params in [dict(incident_rate=-1), dict(incident_rate=11), dict(warmup_days=-1), *bad]:
        with pytest.raises(ValueError):
            type(sim)(**params)


def check_stream_invariants(stream: EventBatch, prefix: str, kinds: tuple[str, ...]) -> None:
    """Time-sorted, contiguous positions, ids from positions, float64 numbers, labels matching the kind column."""
    assert np.all(np.diff(stream.times) >= 0)
    assert stream.positions.tolist() == list(range(len(stream)))
    assert stream.ids.tolist() == [f"{prefix}{p:012d}" for p in range(len(stream))]
    assert all(column.dtype == np.float64 for column in stream.numeric.values()) and stream.labels.dtype == np.int8
    assert (stream.labels == 1).tolist() == (stream.extra["incident"] != "").tolist()
    assert set(stream.extra["incident"].tolist()) <= {"", *kinds}


# --- incidents ------------------------------------------------------------------


def check_incident_table(sim: IncidentSimulator, params: dict, stream: EventBatch, table: list[dict],
                         limits: dict[str, tuple[float, float]], count: tuple[int, int]) -> None:
    """Every kind, about the expected number, by start, after warm-up, durations in range; from the plans alone."""
    warmup_end = sim.start_time + sim.warmup_days * DAY
    assert {i["kind"] for i in table} == set(sim.INCIDENT_KINDS) == set(limits)
    assert count[0] <= len(table) <= count[1], "about incident_rate x entities a day after warm-up"
    assert [i["start"] for i in table] == sorted(i["start"] for i in table)
    assert all(warmup_end <= i["start"] < i["end"] and i["start"] <= stream.times[-1] for i in table)
    assert stream.labels[stream.times < warmup_end].sum() == 0
    for kind, (low, high) in limits.items():
        durations = [i["end"] - i["start"] for i in table if i["kind"] == kind]
        assert low <= min(durations) and max(durations) <= high, kind
    for incident in table:
        assert list(incident) == ["kind", "entity", sim.MEMBERS, "start", "end"]
        assert isinstance(incident["start"], float) and isinstance(incident[sim.MEMBERS], list)
    # computed from the plans alone, the same in a fresh simulator; a later cut only adds incidents
    fresh = type(sim)(**params)
    assert fresh.incidents(float(stream.times[-1]) + 0.001) == table
    cut = sim.start_time + 3 * DAY
    assert fresh.incidents(cut) == [i for i in table if i["start"] < cut]
    assert fresh.incidents("2026-01-03T00:00:00Z") == fresh.incidents(sim.start_time + 2 * DAY)


def check_labels_are_the_incident_windows(stream: EventBatch, table: list[dict], rows: Callable[[dict], np.ndarray],
                                          skip: str | None, empty: int = 0) -> None:
    """The labelled events are exactly those ``rows`` gives for the incidents (but kind ``skip``, which leaves
    none), at most ``empty`` incidents have none, and each event's kind is one of those covering it."""
    expected = np.zeros(len(stream), dtype=bool)
    kinds_at: dict[int, set[str]] = {}
    empties = 0
    for incident in table:
        if incident["kind"] == skip:
            continue
        covered = rows(incident)
        empties += len(covered) == 0
        expected[covered] = True
        for row in covered.tolist():
            kinds_at.setdefault(row, set()).add(incident["kind"])
    assert empties <= empty
    assert stream.labels.astype(bool).tolist() == expected.tolist()
    assert all(stream.extra["incident"][row] in kinds for row, kinds in kinds_at.items())
    assert set(stream.extra["incident"].tolist()) == {"", *(i["kind"] for i in table if i["kind"] != skip)}


def check_silences(stream: EventBatch, table: list[dict], kind: str, report_every: float, jitter: float) -> None:
    """An entity silenced by an incident sends nothing inside it, from about its start to about its end."""
    silences = [i for i in table if i["kind"] == kind]
    assert len(silences) >= 3
    end_of_data = float(stream.times[-1])
    for incident in silences:
        times = stream.times[stream.keys == incident["entity"]]
        assert not ((times >= incident["start"]) & (times <= incident["end"])).any()
        before, after = times[times < incident["start"]], times[times > incident["end"]]
        assert incident["start"] - before[-1] <= report_every + 2 * (jitter + 1)
        if incident["end"] + 600 < end_of_data:
            assert after[0] - incident["end"] <= report_every + 2 * (jitter + 1)


# --- source, files, CLI ---------------------------------------------------------


def check_source_reads_and_seeks(spec: SimulatorSpec, events: int, seek: int) -> None:
    """The simulator source of ``spec`` reads the simulator's stream, and after a seek its rest."""
    simulator = {"hosts": "HostMetricsSimulator", "requests": "RequestLogSimulator", "sensors": "SensorSimulator"}[spec.scenario]
    source = SimulatorSource(spec, max_events=events)
    assert source.name == f"simulator:{spec.scenario}:{spec.seed}" and type(source.simulator).__name__ == simulator
    expected = type(source.simulator).from_spec(spec).generate(events)
    first = source.read(1_000)
    assert first.positions.tolist() == list(range(1_000)) and first.next_position == 1_000
    assert_same(first.events, expected.take(slice(0, 1_000)))
    source.seek(seek)
    parts = []
    while (batch := source.read(4_000)) is not None:
        parts.append(batch.events)
    assert_same(EventBatch.concat(parts), expected.take(slice(seek, events)))
    assert expected.labels[seek:].sum() > 0


def check_write_round_trips(path: Path, stream: EventBatch, write: Callable[..., None], fields: tuple[FieldInfo, ...]) -> dict:
    """A batch (1,000 events and 200 labelled ones) written to ``path`` reads back field for field."""
    batch = EventBatch.concat([stream.take(slice(0, 1_000)), stream.take(np.flatnonzero(stream.labels == 1)[:200])])
    write(batch, path)
    data = read_back(path, path.suffix.lstrip("."), fields)
    columns = field_columns(batch, fields)
    for field in fields:
        assert data[field.name] == columns[field.name].tolist(), field.name
    assert sum(data["is_incident"]) == 200
    return data


def check_cli(out: Path, options: list[str], fields: tuple[FieldInfo, ...], sim: IncidentSimulator) -> dict[str, Any]:
    """`tocsin simulate --out OUT OPTIONS` writes the events and OUT.incidents.json (the incidents ``sim`` plans up
    to the last event); returns the events written."""
    result = CliRunner().invoke(app, ["simulate", "--out", str(out), *options], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    data = read_back(out, out.suffix.lstrip("."), fields)
    time_field = next(field.name for field in fields if field.batch_column == "times")
    written = json.loads(Path(f"{out}.incidents.json").read_text())
    assert written["events"] == len(data["id"]) and (written["from"], written["to"]) == (data[time_field][0], data[time_field][-1])
    assert written["incidents"] == sim.incidents(data[time_field][-1] + 0.001) and len(written["incidents"]) >= 3
    assert all(i["start"] <= written["to"] for i in written["incidents"])
    assert sum(data["is_incident"]) > 0 and "incidents" in result.output
    return data
