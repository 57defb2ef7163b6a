"""Tests for src/tocsin/simulate/logins.py (the logins scenario of the simulator source and `tocsin simulate`) and the
reference spec examples/logins.yaml."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import create_engine, text

from tests.simulate import helpers
from tests.simulate.helpers import DAY, assert_same
from tocsin.batch import EventBatch
from tocsin.simulate import SCENARIOS, simulator_class
from tocsin.simulate.logins import FIELDS, INCIDENT_KINDS, LoginSimulator, write_events
from tocsin.sources.simulator import SimulatorSource
from tocsin.spec import SimulatorSource as SimulatorSpec
from tocsin.spec import load_spec

ROOT = Path(__file__).resolve().parents[2]
# 300 accounts: ~4,500 events a weekday; ~9 attacks a day after warm-up
PARAMS = {"accounts": 300, "incident_rate": 0.03, "warmup_days": 1.0, "seed": 11}
DAYS = 4  # 2026-01-01 is a Thursday: Thursday to Sunday, a weekend included
LIMITS = {"credential_stuffing": (120, 900), "password_spraying": (1800, 14_400), "impossible_travel": (300, 1800),
          "forbidden_burst": (60, 600)}


@pytest.fixture(scope="module")
def sim() -> LoginSimulator:
    return LoginSimulator(**PARAMS)


@pytest.fixture(scope="module")
def stream(sim: LoginSimulator) -> EventBatch:
    """Four days of logins and accesses."""
    return sim.generate(sum(sim._day_size(i) for i in range(DAYS)))


@pytest.fixture(scope="module")
def table(sim: LoginSimulator, stream: EventBatch) -> list[dict]:
    return sim.incidents(float(stream.times[-1]) + 0.001)


def attack_rows(stream: EventBatch, incident: dict) -> np.ndarray:
    """The attacker's events of an incident: its kind, one of its accounts, one of its IPs, inside [start, end)."""
    return np.flatnonzero((stream.extra["incident"] == incident["kind"]) & np.isin(stream.keys, incident["entities"])
                          & np.isin(stream.categorical["ip"], incident["ips"])
                          & (stream.times >= incident["start"]) & (stream.times < incident["end"]))


def km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    a = math.sin((p2 - p1) / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(math.radians(lon2 - lon1) / 2) ** 2
    return 2 * 6371.0088 * math.asin(min(1.0, math.sqrt(a)))


# --- determinism and resuming ---------------------------------------------------


def test_registered_and_built_from_a_spec():
    assert SCENARIOS["logins"] == "tocsin.simulate.logins:LoginSimulator" and simulator_class("logins") is LoginSimulator
    sim = LoginSimulator.from_spec(SimulatorSpec(kind="simulator", scenario="logins", seed=5))
    assert (sim.accounts, sim.incident_rate, sim.warmup_days, sim.seed) == (2_000, 0.004, 1.0, 5)
    weekday, weekend = sim._day_size(1), sim._day_size(2)  # Friday, Saturday
    assert 20_000 <= weekday <= 40_000 and 0.3 * weekday <= weekend <= 0.6 * weekday


def test_same_parameters_give_identical_events_and_another_seed_others(stream):
    assert_same(stream, LoginSimulator(**PARAMS).generate(len(stream)))
    other = LoginSimulator(**{**PARAMS, "seed": 12}).generate(5_000)
    assert other.keys.tolist() != stream.keys[:5_000].tolist()


def test_days_are_the_stream_cut_at_midnight(sim, stream):
    helpers.check_days_are_the_stream_cut_at_midnight(sim, stream, DAYS)


@pytest.mark.parametrize("start_position", [0, 1, 4_321, 4_500, 9_999, 13_000])
def test_resuming_at_any_position_equals_a_fresh_run(stream, start_position):
    """A fresh simulator (no cached day offsets) resumed at ``start_position`` continues the stream exactly."""
    count = min(3_000, len(stream) - start_position)
    batches = list(LoginSimulator(**PARAMS).batches(1_234, start_position=start_position, max_events=count))
    assert_same(EventBatch.concat(batches), stream.take(slice(start_position, start_position + count)))


def test_generate_edge_cases(sim):
    helpers.check_generate_edge_cases(sim, "lg", [{"accounts": 5}])


# --- the stream -------------------------------------------------------------------


def test_time_sorted_ids_unique_positions_contiguous(stream):
    helpers.check_stream_invariants(stream, "lg", INCIDENT_KINDS)


def test_columns_and_habits(sim, stream):
    assert [f.name for f in FIELDS] == ["id", "ts", "user", "ip", "country", "lat", "lon", "resource", "success", "status",
                                        "is_incident", "incident"]
    status, success = stream.numeric["status"], stream.numeric["success"]
    assert set(np.unique(status).tolist()) == {200.0, 401.0, 403.0}
    assert (success == (status == 200)).all()
    login = stream.categorical["resource"] == "/login"
    assert (status[login] != 403).all() and (status[~login] != 401).all()
    normal = stream.labels == 0
    assert 0.02 <= (status[login & normal] == 401).mean() <= 0.1, "people mistype now and then"
    assert (status[~login & normal] == 403).mean() <= 0.02
    # people log in at human hours of their own time zone: few logins between 1:00 and 5:00 local time
    users = np.flatnonzero(login & normal)
    offset = sim._city_offset[sim._home[np.searchsorted(sim._user_names, stream.keys[users])]]
    local_hour = np.mod(np.mod(stream.times[users], DAY) / 3600.0 + offset, 24.0)
    assert ((local_hour >= 1) & (local_hour < 5)).mean() < 0.03
    # a few habitual places: most accounts use at most 6 IPs (home, office, VPN, mobile and Wi-Fi pools) in four days
    ips = {}
    for user, ip in zip(stream.keys[normal].tolist(), stream.categorical["ip"][normal].tolist()):
        ips.setdefault(user, set()).add(ip)
    assert np.median([len(v) for v in ips.values()]) <= 6


# --- incidents ------------------------------------------------------------------


def test_incident_table(sim, stream, table):
    warmup_end = sim.start_time + sim.warmup_days * DAY
    assert {i["kind"] for i in table} == set(INCIDENT_KINDS)
    assert 15 <= len(table) <= 45, "about incident_rate x accounts a day after warm-up"
    assert [i["start"] for i in table] == sorted(i["start"] for i in table)
    assert all(warmup_end <= i["start"] < i["end"] for i in table)
    assert stream.labels[stream.times < warmup_end].sum() == 0
    for kind, (low, high) in LIMITS.items():
        durations = [i["end"] - i["start"] for i in table if i["kind"] == kind]
        assert low <= min(durations) and max(durations) <= high, kind
    for incident in table:
        assert list(incident) == ["kind", "entity", "entities", "ips", "start", "end"]
        assert set(incident["entities"]) <= set(sim._user_names.tolist()) and incident["ips"]
        if incident["kind"] == "impossible_travel":
            assert incident["entity"] == incident["entities"][0]
        else:
            assert incident["entity"] == ",".join(incident["ips"])
    fresh = LoginSimulator(**PARAMS)
    assert fresh.incidents(float(stream.times[-1]) + 0.001) == table
    cut = sim.start_time + 3 * DAY
    assert fresh.incidents(cut) == [i for i in table if i["start"] < cut]


def test_labels_match_the_incident_table(stream, table):
    """The labelled events are exactly the attackers' (kind, account, IP, inside the window) of the incidents."""
    expected = np.zeros(len(stream), dtype=bool)
    for incident in table:
        rows = attack_rows(stream, incident)
        if incident["end"] <= stream.times[-1]:
            assert len(rows) > 0, incident["kind"]
        expected[rows] = True
    assert stream.labels.astype(bool).tolist() == expected.tolist()


def test_attack_shapes(stream, table):
    status, times = stream.numeric["status"], stream.times
    checked = dict.fromkeys(INCIDENT_KINDS, 0)
    for incident in table:
        if incident["end"] > times[-1]:
            continue
        rows = attack_rows(stream, incident)
        kind = incident["kind"]
        if kind == "credential_stuffing":  # one IP, account after account, nearly all failing, 0.1-2 a second
            logins = rows[stream.categorical["resource"][rows] == "/login"]
            assert len(incident["ips"]) == 1 and (status[logins] == 401).mean() >= 0.9
            assert len(set(stream.keys[logins].tolist())) == min(len(logins), 300)
            assert 0.08 <= len(logins) / (incident["end"] - incident["start"]) <= 2.2
        elif kind == "password_spraying":  # several IPs, one or two tries per account, slow
            assert 3 <= len(incident["ips"]) <= 8 and 40 <= len(incident["entities"]) <= 300
            _, tries = np.unique(stream.keys[rows], return_counts=True)
            assert tries.max() <= 2 and (status[rows] == 401).mean() >= 0.95
            assert len(rows) / len(incident["ips"]) / ((incident["end"] - incident["start"]) / 3600) <= 250
        elif kind == "impossible_travel":  # a success from far away, too soon after the user's own login
            (user,) = incident["entities"]
            first = rows[0]
            assert status[first] == 200 and stream.categorical["resource"][first] == "/login"
            before = np.flatnonzero((stream.keys == user) & (times < times[first]))
            last = before[-1]
            distance = km(stream.numeric["lat"][last], stream.numeric["lon"][last], stream.numeric["lat"][first],
                          stream.numeric["lon"][first])
            assert distance / ((times[first] - times[last]) / 3600) > 1000
        else:  # forbidden_burst: one client, mostly denied
            assert len(incident["ips"]) == 1 and (status[rows] == 403).mean() >= 0.4 and len(rows) >= 5
        checked[kind] += 1
    assert all(count >= 2 for count in checked.values()), checked


# --- source, files, CLI ---------------------------------------------------------


def test_simulator_source_reads_and_seeks(stream):
    spec = SimulatorSpec(kind="simulator", scenario="logins", accounts=300, incident_rate=0.03, seed=11)
    source = SimulatorSource(spec, max_events=8_000)
    assert type(source.simulator) is LoginSimulator
    first = source.read(1_000)
    assert_same(first.events, stream.take(slice(0, 1_000)))
    source.seek(6_000)
    parts = []
    while (batch := source.read(1_500)) is not None:
        parts.append(batch.events)
    assert_same(EventBatch.concat(parts), stream.take(slice(6_000, 8_000)))


@pytest.mark.parametrize("format", ["jsonl", "parquet"])
def test_write_round_trips(tmp_path, stream, format):
    data = helpers.check_write_round_trips(tmp_path / f"logins.{format}", stream, write_events, FIELDS)
    assert set(data["status"]) <= {200, 401, 403} and set(data["success"]) <= {True, False}


def test_cli_writes_events_and_incidents(tmp_path):
    sim = LoginSimulator(**PARAMS)
    helpers.check_cli(tmp_path / "logins.parquet", ["--scenario", "logins", "--accounts", "300", "--incident-rate", "0.03",
                                                    "--seed", "11", "--events", "12000"], FIELDS, sim)


# --- the reference spec ---------------------------------------------------------


def test_reference_spec_loads_and_its_packaged_copy_is_identical():
    example = ROOT / "examples" / "logins.yaml"
    assert (ROOT / "src" / "tocsin" / "specs" / "logins.yaml").read_bytes() == example.read_bytes()
    spec = load_spec(example)
    assert spec.source.scenario == "logins" and spec.event_schema.key_field == "user" and spec.alerting.group_by == "ip"
    assert [rule.name for rule in spec.rules] == ["impossible_travel", "forbidden_burst", "credential_attack"]


def test_a_short_run_of_the_spec_catches_stuffing_as_one_alert_per_ip_listing_the_accounts(tmp_path):
    from tocsin.engine.backtest import backtest

    sim = LoginSimulator(accounts=400, incident_rate=0.02, warmup_days=1.0, seed=4)
    batch = sim.generate(sum(sim._day_size(i) for i in range(2)))  # two days
    path = tmp_path / "logins.parquet"
    write_events(batch, path)
    incidents = sim.incidents(float(batch.times[-1]) + 0.001)
    stuffing = [i for i in incidents if i["kind"] == "credential_stuffing"]
    assert stuffing
    db = tmp_path / "replay.db"
    report = backtest(load_spec(ROOT / "examples" / "logins.yaml"), path, "is_incident", store_url=f"sqlite:///{db}",
                      incidents=incidents, warmup_days=1.0)
    kinds = report["incidents"]
    assert all(figures["caught"] >= 0.8 * figures["incidents"] for figures in kinds.values()), json.dumps(kinds)
    with create_engine(f"sqlite:///{db}").connect() as connection:
        alerts = connection.execute(text(
            "select a.entity, a.severity, d.attributes from alerts a join alert_details d "
            "on a.pipeline = d.pipeline and a.alert_key = d.alert_key where d.suppressed = 0")).fetchall()
    for incident in stuffing:
        (ip,) = incident["ips"]
        mine = [row for row in alerts if row[0] == ip]
        assert len(mine) == 1, f"one alert for the stuffing IP {ip}, got {len(mine)}"
        _, severity, attributes = mine[0]
        attributes = json.loads(attributes) if isinstance(attributes, str) else attributes
        assert severity == "critical" and attributes["member_count"] >= 10
        assert set(attributes["members"]) <= set(incident["entities"]), "the accounts it tried"
    # no alert is keyed by an account: every alert is about an IP
    assert all(row[0].count(".") == 3 for row in alerts)


def test_the_spec_runs_over_its_own_simulator_source(tmp_path, monkeypatch):
    """`tocsin run examples/logins.yaml`: the simulator's batches carry every declared field (the account as a category too)."""
    import sqlite3

    from typer.testing import CliRunner

    from tocsin.cli.main import app

    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["run", str(ROOT / "examples" / "logins.yaml"), "--events", "15000"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    with sqlite3.connect(tmp_path / ".tocsin" / "logins.db") as db:
        assert db.execute("select count(*) from dead_letters").fetchone() == (0,)
