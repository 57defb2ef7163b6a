"""Tests for src/tocsin/simulate/requests.py (and the requests scenario of the simulator source and `tocsin simulate`)."""

from __future__ import annotations

import numpy as np
import pytest

from tests.simulate import helpers
from tests.simulate.helpers import DAY, assert_same, rows_of
from tocsin.batch import EventBatch
from tocsin.simulate import REQUEST_FIELDS, REQUEST_INCIDENT_KINDS, RequestLogSimulator, write_request_events
from tocsin.spec import SimulatorSource as SimulatorSpec

# 10 services at 0.3 requests/s at peak: ~140,000 requests a weekday; ~8 incidents a day after warm-up
PARAMS = dict(services=10, request_rate=0.3, incident_rate=0.8, warmup_days=1.0, seed=11)
DAYS = 4  # 2026-01-01 is a Thursday: Thursday to Sunday, a weekend included
LIMITS = {"latency_creep": (1800, 7200), "error_burst": (300, 1200), "traffic_drop": (600, 3600), "endpoint_failing": (600, 2400)}


@pytest.fixture(scope="module")
def sim() -> RequestLogSimulator:
    return RequestLogSimulator(**PARAMS)


@pytest.fixture(scope="module")
def stream(sim: RequestLogSimulator) -> EventBatch:
    """Four days of requests."""
    return sim.generate(sum(sim._day_size(i) for i in range(DAYS)))


@pytest.fixture(scope="module")
def table(sim: RequestLogSimulator, stream: EventBatch) -> list[dict]:
    return sim.incidents(float(stream.times[-1]) + 0.001)


def incident_rows(stream: EventBatch, incident: dict) -> np.ndarray:
    """The requests an incident covers: its service's in [start, end), only its endpoint's for endpoint_failing."""
    (service,) = incident["entities"]
    rows = rows_of(stream, [service], incident["start"], incident["end"])
    if incident["kind"] == "endpoint_failing":
        rows = rows[stream.categorical["endpoint"][rows] == incident["entity"][len(service):]]
    return rows


def is_5xx(stream: EventBatch, rows: np.ndarray) -> np.ndarray:
    return stream.numeric["status"][rows] >= 500


# --- determinism and resuming ---------------------------------------------------


def test_same_parameters_give_identical_events_and_another_seed_others(stream):
    helpers.check_same_parameters_give_identical_events(RequestLogSimulator, PARAMS, stream)


def test_days_are_the_stream_cut_at_midnight(sim, stream):
    helpers.check_days_are_the_stream_cut_at_midnight(sim, stream, DAYS)


@pytest.mark.parametrize("start_position", [0, 1, 99_999, 137_000, 250_001, 401_234])
def test_resuming_equals_the_uninterrupted_stream(stream, start_position):
    helpers.check_resuming(RequestLogSimulator, PARAMS, stream, start_position)


def test_generate_edge_cases(sim):
    helpers.check_generate_edge_cases(sim, "rq", [dict(services=0), dict(request_rate=0)])


# --- stream invariants ----------------------------------------------------------


def test_time_sorted_ids_unique_positions_contiguous(stream):
    helpers.check_stream_invariants(stream, "rq", REQUEST_INCIDENT_KINDS)


def test_columns_match_the_schema(sim, stream):
    assert [f.name for f in REQUEST_FIELDS] == [
        "id", "timestamp", "service", "endpoint", "latency_ms", "status", "is_incident", "incident",
    ]
    assert list(stream.numeric) == ["latency_ms", "status"] and list(stream.categorical) == ["endpoint"]
    assert set(stream.keys.tolist()) == set(sim._service_names.tolist()) and len(set(stream.keys.tolist())) == 10
    assert set(np.unique(stream.numeric["status"]).tolist()) == {200, 400, 401, 403, 404, 429, 500, 502, 503, 504}
    latency, status = stream.numeric["latency_ms"], stream.numeric["status"]
    assert latency.min() >= 0.1 and 10_000 <= latency[status == 504].min() and latency[status == 504].max() <= 10_200
    # 3-8 endpoints per service, each a route of its own service
    pairs = set(zip(stream.keys.tolist(), stream.categorical["endpoint"].tolist()))
    per_service = {s: {e for k, e in pairs if k == s} for s in set(stream.keys.tolist())}
    assert all(3 <= len(endpoints) <= 8 for endpoints in per_service.values())
    assert all(e.split("/")[2] == s for s, endpoints in per_service.items() for e in endpoints)


def test_default_volume_and_spec_defaults():
    sim = RequestLogSimulator.from_spec(SimulatorSpec(kind="simulator", scenario="requests"))
    assert (sim.services, sim.request_rate, sim.incident_rate, sim.warmup_days) == (20, 0.8, 0.25, 1.0)
    weekday, weekend = sim._day_size(1), sim._day_size(2)  # Friday, Saturday
    assert 600_000 <= weekday <= 1_000_000 and 0.6 * weekday <= weekend <= 0.85 * weekday


# --- incidents ------------------------------------------------------------------


def test_incident_table(sim, stream, table):
    helpers.check_incident_table(sim, PARAMS, stream, table, LIMITS, (15, 40))
    endpoints = set(zip(stream.keys.tolist(), stream.categorical["endpoint"].tolist()))
    for incident in table:
        (service,) = incident["entities"]
        if incident["kind"] == "endpoint_failing":  # "{service}{endpoint}", the endpoint's route starting with "/"
            assert incident["entity"].startswith(service + "/") and (service, incident["entity"][len(service):]) in endpoints
        else:
            assert incident["entity"] == service


def test_labels_are_exactly_the_incident_windows(stream, table):
    # only a rare endpoint at night may see no request
    helpers.check_labels_are_the_incident_windows(stream, table, lambda incident: incident_rows(stream, incident), skip=None, empty=2)


def test_incident_shapes(sim, stream, table):
    latency, labels = stream.numeric["latency_ms"], stream.labels.astype(bool)
    checked = dict.fromkeys(REQUEST_INCIDENT_KINDS, 0)
    for incident in table:
        (service,) = incident["entities"]
        start, end, kind = incident["start"], incident["end"], incident["kind"]
        rows = incident_rows(stream, incident)
        before = rows_of(stream, [service], start - 3_600, start)
        before = before[~labels[before]]
        if len(rows) < 20 or len(before) < 50:
            continue
        if kind == "latency_creep":
            last = rows[stream.times[rows] >= end - (end - start) / 4]
            assert np.median(latency[last]) >= 2 * np.median(latency[before])
            assert np.corrcoef(stream.times[rows], np.log(latency[rows]))[0, 1] > 0.3
        elif kind == "error_burst":
            assert is_5xx(stream, rows).mean() >= 0.12 and is_5xx(stream, before).mean() < 0.05
        elif kind == "endpoint_failing":
            assert is_5xx(stream, rows).mean() >= 0.7
            others = rows_of(stream, [service], start, end)
            others = others[~labels[others]]
            assert len(others) == 0 or is_5xx(stream, others).mean() < 0.1, "the service's other endpoints look fine"
        else:  # traffic_drop: the same clock window on warm-up Thursday as the reference
            shift = np.floor((start - sim.start_time) / DAY) * DAY
            reference = rows_of(stream, [service], start - shift, end - shift)
            if len(reference) < 50:
                continue
            assert len(rows) <= 0.45 * len(reference)
        checked[kind] += 1
    assert all(count >= 2 for count in checked.values()), checked


# --- normal behaviour -----------------------------------------------------------


def test_daily_and_weekly_seasonality(sim, stream):
    legit = stream.take(stream.labels == 0)
    hour = (legit.times % DAY) / 3600
    day = ((legit.times - sim.start_time) // DAY).astype(np.int64)  # 0 Thursday, 1 Friday, 2 Saturday, 3 Sunday
    business, night = (hour >= 10) & (hour < 17), hour < 5
    per_hour = {name: np.sum(mask) / hours for name, mask, hours in (
        ("weekday business", business & (day <= 1), 14), ("weekday night", night & (day <= 1), 10),
        ("weekend business", business & (day >= 2), 14))}
    assert per_hour["weekday business"] > 2.5 * per_hour["weekday night"]
    assert per_hour["weekend business"] < 0.8 * per_hour["weekday business"]
    latency, ok = legit.numeric["latency_ms"], legit.numeric["status"] == 200
    for endpoint in ("/v1/auth/{id}", "/v1/users/{id}"):
        of_it = ok & (legit.categorical["endpoint"] == endpoint)
        if of_it.sum() > 2_000:
            assert np.median(latency[of_it & business & (day <= 1)]) > 1.15 * np.median(latency[of_it & night])
    assert 0.002 <= np.mean(legit.numeric["status"] >= 500) <= 0.012
    assert 0.003 <= np.mean((legit.numeric["status"] >= 400) & (legit.numeric["status"] < 500)) <= 0.03


def test_services_with_a_nightly_batch_get_a_burst_at_the_same_time_every_day(sim, stream):
    checked = 0
    for s in np.flatnonzero(sim._has_cron).tolist():
        service, endpoint = sim._service_names[s], sim._endpoint_names[sim._cron_endpoint[s]]
        length = sim._cron_length[s]
        for index in range(DAYS):
            cron_from = sim.start_time + index * DAY + sim._cron_start[s]
            inside = rows_of(stream, [service], cron_from, cron_from + length)
            before = rows_of(stream, [service], cron_from - length, cron_from)
            if stream.labels[inside].any() or stream.labels[before].any():
                continue
            assert len(inside) >= 2.5 * len(before)
            assert np.mean(stream.categorical["endpoint"][inside] == endpoint) > 0.5
            checked += 1
    assert checked >= 8


# --- spec, source, files, CLI ---------------------------------------------------


def test_from_spec_uses_every_parameter():
    spec = SimulatorSpec(kind="simulator", scenario="requests", services=7, request_rate=0.2, incident_rate=0.5,
                         warmup_days=0.25, seed=5, start="2025-06-01T00:00:00Z")
    sim = RequestLogSimulator.from_spec(spec)
    assert (sim.services, sim.request_rate, sim.incident_rate, sim.warmup_days, sim.seed) == (7, 0.2, 0.5, 0.25, 5)
    assert sim.start_time == 1748736000.0
    assert_same(sim.generate(3_000), RequestLogSimulator(7, 0.2, 0.5, 0.25, "2025-06-01T00:00:00Z", 5).generate(3_000))


def test_the_simulator_source_reads_and_seeks_the_requests_scenario():
    spec = SimulatorSpec(kind="simulator", scenario="requests", services=6, request_rate=0.5, incident_rate=2.0, warmup_days=0.1, seed=3)
    helpers.check_source_reads_and_seeks(spec, 60_000, 25_000)


@pytest.mark.parametrize("format", ["jsonl", "csv", "parquet"])
def test_write_events_round_trips(tmp_path, stream, format):
    path = tmp_path / f"requests.{format}"
    data = helpers.check_write_round_trips(path, stream, write_request_events, REQUEST_FIELDS)
    assert set(data["status"]) <= {200, 400, 401, 403, 404, 429, 500, 502, 503, 504}
    if format == "jsonl":
        assert '"status":200,' in path.read_text().splitlines()[0]  # an integer, as in request logs


def test_cli_writes_request_events_and_the_incident_table(tmp_path):
    options = ["--scenario", "requests", "--services", "4", "--request-rate", "0.2", "--incident-rate", "2", "--events", "80000",
               "--seed", "5"]
    sim = RequestLogSimulator(services=4, request_rate=0.2, incident_rate=2.0, seed=5)
    data = helpers.check_cli(tmp_path / "requests.jsonl", options, REQUEST_FIELDS, sim)
    assert len(data["id"]) == 80_000 and len(set(data["service"])) == 4
