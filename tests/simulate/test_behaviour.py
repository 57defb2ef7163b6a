"""Tests for src/tocsin/simulate/behaviour.py (page views with bots), the behaviour scenario of `tocsin simulate`,
and the reference spec examples/behaviour.yaml."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.simulate import helpers
from tests.simulate.helpers import DAY, assert_same, rows_of
from tocsin.batch import EventBatch
from tocsin.simulate.behaviour import (
    FIELDS,
    INCIDENT_KINDS,
    BehaviourSimulator,
    write_events,
)
from tocsin.spec import SimulatorSource as SimulatorSpec
from tocsin.spec import load_spec

ROOT = Path(__file__).resolve().parents[2]
# 300 visitors: ~3,000 page views of people a day; ~9 bots a day after warm-up
PARAMS = dict(visitors=300, incident_rate=0.03, warmup_days=1.0, seed=11)
DAYS = 3
LIMITS = {"regular_cadence": (1_200, 5_400), "impossible_sequence": (1_200, 3_600), "scraping_burst": (180, 600)}


@pytest.fixture(scope="module")
def sim() -> BehaviourSimulator:
    return BehaviourSimulator(**PARAMS)


@pytest.fixture(scope="module")
def stream(sim: BehaviourSimulator) -> EventBatch:
    return sim.generate(sum(sim._day_size(i) for i in range(DAYS)))


@pytest.fixture(scope="module")
def table(sim: BehaviourSimulator, stream: EventBatch) -> list[dict]:
    return sim.incidents(float(stream.times[-1]) + 0.001)


def bot_rows(stream: EventBatch, incident: dict) -> np.ndarray:
    return rows_of(stream, incident["entities"], incident["start"], incident["end"])


# --- determinism and resuming ---------------------------------------------------


def test_same_parameters_give_identical_events_and_another_seed_others(stream):
    assert_same(stream, BehaviourSimulator(**PARAMS).generate(len(stream)))
    other = BehaviourSimulator(**{**PARAMS, "seed": 12}).generate(2_000)
    assert other.keys.tolist() != stream.keys[:2_000].tolist()


def test_days_are_the_stream_cut_at_midnight(sim, stream):
    helpers.check_days_are_the_stream_cut_at_midnight(sim, stream, DAYS)


@pytest.mark.parametrize("start_position", [0, 1, 2_999, 4_321, 7_000])
def test_resuming_equals_the_uninterrupted_stream(stream, start_position):
    """A fresh simulator (no cached day) resumed at a position continues the stream exactly."""
    batches = list(BehaviourSimulator(**PARAMS).batches(777, start_position=start_position, max_events=2_000))
    assert [len(b) for b in batches] == [777, 777, 446]
    assert_same(EventBatch.concat(batches), stream.take(slice(start_position, start_position + 2_000)))


def test_generate_edge_cases(sim):
    helpers.check_generate_edge_cases(sim, "pv", [dict(visitors=5)])


# --- the stream -------------------------------------------------------------------


def test_time_sorted_ids_unique_positions_contiguous(stream):
    helpers.check_stream_invariants(stream, "pv", INCIDENT_KINDS)


def test_columns_match_the_schema(stream):
    assert [f.name for f in FIELDS] == ["id", "ts", "visitor_id", "session_id", "ip", "user_agent", "page", "page_type",
                                        "referrer", "is_incident", "incident"]
    assert list(stream.categorical) == ["session_id", "ip", "user_agent", "page", "page_type", "referrer"]
    assert set(stream.categorical["page_type"].tolist()) == {"home", "category", "product", "search", "cart", "checkout",
                                                            "account", "help"}
    assert all(len(k) == 11 and k.startswith("v") for k in set(stream.keys.tolist()))


def test_people_follow_the_site_links_with_heavy_tailed_think_times(stream, sim):
    people = stream.take(np.flatnonzero(stream.labels == 0))
    session, page, referrer = (people.categorical[name] for name in ("session_id", "page", "referrer"))
    order = np.lexsort((people.times, session))
    same = session[order][1:] == session[order][:-1]
    inner_referrer = referrer[order][1:][same]
    previous_page = page[order][:-1][same]
    # an inner page's referrer is the previous page, but for products opened in tabs (the category they came from)
    assert np.mean(inner_referrer == previous_page) > 0.85
    assert set(referrer[order][np.r_[True, ~same]].tolist()) <= {"google.com", "", "facebook.com", "newsletter"}
    gaps = np.diff(people.times[order])[same]
    assert 5 < np.median(gaps) < 30 and np.percentile(gaps, 99) > 10 * np.median(gaps)
    hour = (people.times % DAY) // 3600
    assert np.sum((hour >= 19) & (hour < 21)) > 5 * np.sum((hour >= 2) & (hour < 4))


# --- incidents ------------------------------------------------------------------


def test_incident_table(sim, stream, table):
    helpers.check_incident_table(sim, PARAMS, stream, table, LIMITS, (8, 32))
    assert all(incident["entities"] == [incident["entity"]] for incident in table)
    people = set(stream.keys[stream.labels == 0].tolist())
    assert not people & {incident["entity"] for incident in table}


def test_labels_are_exactly_the_bots_page_views(stream, table):
    helpers.check_labels_are_the_incident_windows(stream, table, lambda incident: bot_rows(stream, incident), skip=None)


def test_each_kind_of_bot_looks_like_it(stream, table):
    checked = dict.fromkeys(INCIDENT_KINDS, 0)
    for incident in table:
        rows = bot_rows(stream, incident)
        if len(rows) < 10:
            continue
        gaps = np.diff(stream.times[rows])
        types = set(stream.categorical["page_type"][rows].tolist())
        if incident["kind"] == "regular_cadence":
            assert np.std(np.log(gaps)) < 0.1 and len(types) >= 3  # browses like a person, at a metronome's pace
        elif incident["kind"] == "impossible_sequence":
            assert types == {"product"} and np.std(np.log(gaps)) > 0.3
        else:
            assert len(rows) >= 100 and incident["end"] - incident["start"] <= 600
        checked[incident["kind"]] += 1
    assert all(count >= 2 for count in checked.values()), checked


# --- spec, source, files, CLI ---------------------------------------------------


def test_from_spec_uses_every_parameter():
    spec = SimulatorSpec(kind="simulator", scenario="behaviour", visitors=120, incident_rate=0.2, warmup_days=0.25, seed=5,
                         start="2025-06-01T00:00:00Z")
    sim = BehaviourSimulator.from_spec(spec)
    assert (sim.visitors, sim.incident_rate, sim.warmup_days, sim.seed, sim.start_time) == (120, 0.2, 0.25, 5, 1748736000.0)
    assert_same(sim.generate(2_000), BehaviourSimulator(120, 0.2, 0.25, "2025-06-01T00:00:00Z", 5).generate(2_000))
    default = BehaviourSimulator.from_spec(SimulatorSpec(kind="simulator", scenario="behaviour"))
    assert (default.visitors, default.incident_rate) == (1_000, 0.01)


def test_write_round_trips(tmp_path, stream):
    helpers.check_write_round_trips(tmp_path / "views.parquet", stream, write_events, FIELDS)


def test_cli_writes_events_and_incidents(tmp_path):
    sim = BehaviourSimulator(**PARAMS)
    helpers.check_cli(tmp_path / "views.parquet", ["--scenario", "behaviour", "--visitors", "300", "--incident-rate", "0.03",
                                                   "--seed", "11", "--events", "8000"], FIELDS, sim)


def test_reference_spec_loads_and_its_packaged_copy_is_identical():
    example = ROOT / "examples" / "behaviour.yaml"
    assert (ROOT / "src" / "tocsin" / "specs" / "behaviour.yaml").read_bytes() == example.read_bytes()
    spec = load_spec(example)
    assert spec.source.scenario == "behaviour" and spec.event_schema.key_field == "visitor_id"
    assert [rule.name for rule in spec.rules] == ["inhuman_cadence", "impossible_sequence", "scraping_burst"]


def test_a_short_run_of_the_spec_flags_every_kind_of_bot(tmp_path):
    from tocsin.engine.backtest import backtest

    sim = BehaviourSimulator(visitors=1_000, incident_rate=0.015, warmup_days=1.0, seed=4)
    batch = sim.generate(sum(sim._day_size(i) for i in range(2)) + 5_000)  # two days and a bit
    path = tmp_path / "views.parquet"
    write_events(batch, path)
    incidents = sim.incidents(float(batch.times[-1]) + 0.001)
    spec = load_spec(ROOT / "examples" / "behaviour.yaml")
    report = backtest(spec, path, "is_incident", incidents=incidents, warmup_days=1.0)
    kinds = report["incidents"]
    assert set(kinds) == set(INCIDENT_KINDS)
    # every bot is flagged before it leaves; cadence and scrapers within 5 minutes. A crawler at a person's pace
    # needs 8 judged steps, from pages people have left 5 times before: on a site this small that takes longer
    assert all(figures["detected"] >= 0.8 * figures["incidents"] for figures in kinds.values()), json.dumps(kinds)
    assert all(kinds[kind]["caught"] >= 0.8 * kinds[kind]["incidents"] for kind in ("regular_cadence", "scraping_burst"))
    assert report["false_alerts_per_100_entities_per_day"] <= 1.0
