"""Incident figures for alerts grouped by another field (alerting.group_by) and for readings timed at
their bucket's start (aggregate:, quality:): small hand-built incident tables, anomalies and alerts."""

import numpy as np
import pytest

from tocsin.engine.backtest import backtest, reading_bucket, replay_alerts
from tocsin.engine.incidents import Alert, AnomalyTimes, evaluate
from tocsin.spec import load_spec

DAY = 86_400.0


def scored_table(entities, times):
    n = len(times)
    return {"entity": np.asarray(entities, dtype=str), "event_time": np.asarray(times, dtype=float),
            "score": np.zeros(n), "label": np.zeros(n, dtype=np.int8)}


# --- alerts grouped by the IP -----------------------------------------------------------------------


def test_alerts_keyed_by_an_ip_are_matched_through_their_members_or_the_incident_ips():
    """Each alert is keyed by an IP, not an account: before, none of them counted (false alerts read 0)."""
    incidents = [
        {"kind": "credential_stuffing", "entity": "6.6.6.6", "entities": ["u1", "u2"], "ips": ["6.6.6.6"],
         "start": 1_000.0, "end": 2_000.0},
        {"kind": "password_spraying", "entity": "7.7.7.7", "entities": ["u3"], "ips": ["7.7.7.7"],
         "start": 10_000.0, "end": 11_000.0},
        {"kind": "impossible_travel", "entity": "u9", "entities": ["u9"], "ips": ["9.9.9.9"],
         "start": 20_000.0, "end": 20_100.0},
    ]
    # anomalies stay keyed by the event's entity (the account): that is what catches
    anomalies = AnomalyTimes(["u2", "u3", "u9"], [1_030.0, 10_400.0, 20_000.0])
    alerts = [
        Alert("6.6.6.6", 1_010.0, 1_900.0, ("u1", "u2")),   # the attacker's IP, its accounts: explained (both ways)
        Alert("5.5.5.5", 10_100.0, 10_500.0, ("u3",)),      # another IP, an account of an incident: explained by a member
        Alert("7.7.7.7", 10_050.0, 10_060.0, ("u77",)),     # the incident's IP, an account outside it: explained by the ips
        Alert("8.8.8.8", 30_000.0, 30_100.0, ("u4", "u5")),  # no incident: false
        Alert("8.8.8.8", 1_500.0, 1_600.0, ("u4",)),         # during an incident, none of its accounts or IPs: false
        Alert("u9", 20_000.0, 20_000.0),                     # an account's own alert (no group_by): explained
        Alert("4.4.4.4", 40_000.0, 40_000.0, ("stranger",)),  # no member is an entity seen: left out
        Alert("model", 2_000.0, 2_000.0),                    # drift: left out
    ]
    entities = {f"u{i}" for i in range(1, 11)} | {"u77"}
    report = evaluate(incidents, anomalies, alerts, scored_table(["u1"], [0.0]), entities, 0.0, 2 * DAY)
    assert {k: v["caught"] for k, v in report["incidents"].items()} == {
        "credential_stuffing": 1, "password_spraying": 0, "impossible_travel": 1}  # u3's anomaly came 400 s in: late
    assert report["incident_scope"]["alerts"] == 6 and report["incident_scope"]["false_alerts"] == 2
    assert report["incident_precision"] == round(1 - 2 / 6, 4)
    assert report["false_alerts_per_100_entities_per_day"] == round(100 * 2 / 11 / 2, 3)


def test_the_logins_backtest_counts_its_ip_alerts(tmp_path):
    """examples/logins.yaml groups alerts by IP: the replayed alerts carry their accounts, count, and
    mostly match the attacks (before, none counted: 0 alerts, 0 false alerts)."""
    from typer.testing import CliRunner

    from tocsin.cli.main import app

    data = tmp_path / "logins.parquet"
    result = CliRunner().invoke(app, ["simulate", "--scenario", "logins", "--seed", "21", "--events", "60000",
                                      "--out", str(data)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    from tocsin.engine.incidents import load_incidents

    spec = load_spec("examples/logins.yaml")
    report = backtest(spec, data, "is_incident", incidents=load_incidents(tmp_path / "logins.parquet.incidents.json"),
                      warmup_days=1.0)
    scope = report["incident_scope"]
    assert scope["bucket_s"] == 0.0
    assert scope["alerts"] > 0, "alerts keyed by an IP count through their members"
    assert report["incident_precision"] is not None and report["incident_precision"] > 0.5


# --- readings timed at their bucket's start ---------------------------------------------------------------


def test_a_reading_covers_its_bucket_for_catching_and_explaining():
    """1-hour buckets (quality.every's default): the reading at b covers [b, b + 3600)."""
    hour = 3_600.0
    incidents = [
        {"kind": "burst", "entities": ["a"], "start": 7_200.0 + 1_200.0, "end": 7_200.0 + 2_400.0},  # 20 min into b = 7200
        {"kind": "burst", "entities": ["b"], "start": 7_200.0 + 30.0, "end": 7_200.0 + 600.0},       # only the bucket before: no catch
        {"kind": "burst", "entities": ["c"], "start": 7_200.0 + 1_200.0, "end": 7_200.0 + 4_800.0},  # found only in the next bucket
        {"kind": "burst", "entities": ["d"], "start": 7_200.0 + 1_200.0, "end": 7_200.0 + 2_400.0},  # the reading two buckets before
    ]
    anomalies = AnomalyTimes(["a", "b", "c", "d"], [7_200.0, 3_600.0, 10_800.0, 3_600.0])
    alerts = [
        Alert("a", 7_200.0, 7_200.0),              # the incident's own bucket
        Alert("b", 0.0, 3_600.0),                  # its last reading's bucket [3600, 7200) meets [start - 2 min, ...]
        Alert("c", 7_200.0 + 4_800.0 + 1_800.0 + 1.0, 20_000.0),  # opens after end + 30 min: false
        Alert("d", 0.0, 0.0),                      # its bucket [0, 3600) ends before [start - 2 min, ...]: false
    ]
    entities = {"a", "b", "c", "d"}
    table = scored_table(["a"], [0.0])
    old = evaluate(incidents, anomalies, alerts, table, entities, 0.0, DAY)
    new = evaluate(incidents, anomalies, alerts, table, entities, 0.0, DAY, bucket=hour)
    assert old["incidents"]["burst"]["caught"] == 0 and old["incident_scope"]["false_alerts"] == 4
    burst = new["incidents"]["burst"]
    assert (burst["incidents"], burst["caught"], burst["detected"]) == (4, 1, 2)
    # delays to the bucket's end: a 3600 + 7200 - 8400 = 2400, c 14400 - 8400 = 6000 (b's anomaly is a whole bucket early)
    assert burst["delay_median_s"] == 4_200.0
    assert new["incident_scope"]["false_alerts"] == 2 and new["incident_scope"]["alerts"] == 4
    assert new["incident_scope"]["bucket_s"] == hour and new["incident_scope"]["to"] == DAY + hour


def test_first_with_a_bucket_is_the_earliest_bucket_meeting_the_window():
    anomalies = AnomalyTimes(["a", "a", "a"], [0.0, 60.0, 120.0])
    assert anomalies.first(["a"], 100.0, 200.0) == 120.0
    assert anomalies.first(["a"], 100.0, 200.0, bucket=60.0) == 60.0   # [60, 120) meets [100, 200]
    assert anomalies.first(["a"], 120.0, 200.0, bucket=60.0) == 120.0  # [60, 120) is half-open
    assert anomalies.first(["a"], 121.0, 200.0, bucket=60.0) == 120.0
    assert anomalies.first(["a"], 181.0, 200.0, bucket=60.0) is None
    assert anomalies.first(["a"], -30.0, -1.0, bucket=60.0) is None


def test_events_scored_one_by_one_give_the_same_figures_as_before():
    """bucket 0 (no aggregate:, no quality:): every figure as before the change, on the hand-built case of
    test_backtest_incidents plus alerts without members."""
    incidents = [
        {"kind": "cpu_spike", "hosts": ["a"], "start": 1_000.0, "end": 2_000.0},
        {"kind": "cpu_spike", "hosts": ["b"], "start": 1_000.0, "end": 2_000.0},
        {"kind": "cpu_spike", "hosts": ["c"], "start": 1_000.0, "end": 2_000.0},
        {"kind": "rack_degraded", "hosts": ["d", "e"], "start": 1_000.0, "end": 5_000.0},
        {"kind": "silent_host", "hosts": ["f"], "start": 1_000.0, "end": 3_000.0},
    ]
    anomalies = AnomalyTimes(["a", "b", "c", "e", "f", "z"], [940.0, 1_300.0, 1_301.0, 1_100.0, 939.0, 50_000.0])
    alerts = [Alert("a", 940.0, 1_500.0), Alert("e", 1_100.0, 1_200.0), Alert("a", 3_800.0, 3_900.0),
              Alert("b", 3_801.0, 3_900.0), Alert("b", 0.0, 880.0), Alert("b", 0.0, 879.0),
              Alert("z", 50_000.0, 50_000.0), Alert("model", 2_000.0, 2_000.0)]
    table = scored_table(["a"] * 2, [0.0, 2 * DAY])
    entities = {"a", "b", "c", "d", "e", "f", "z", "y", "x", "w"}
    report = evaluate(incidents, anomalies, alerts, table, entities, 0.0, 2 * DAY, catch_within=300.0)
    expected = {
        "incidents": {
            "cpu_spike": {"incidents": 3, "caught": 2, "recall": 0.6667, "delay_median_s": 300.0, "delay_p90_s": 300.8, "detected": 3},
            "rack_degraded": {"incidents": 1, "caught": 1, "recall": 1.0, "delay_median_s": 100.0, "delay_p90_s": 100.0, "detected": 1},
            "silent_host": {"incidents": 1, "caught": 0, "recall": 0.0, "delay_median_s": None, "delay_p90_s": None, "detected": 0},
        },
        "incident_recall": 0.6, "incident_precision": round(1 - 3 / 7, 4),
        "false_alerts_per_100_entities_per_day": round(100 * 3 / 10 / 2, 3), "vus_pr": None,
    }
    assert {k: report[k] for k in expected} == expected
    scope = report["incident_scope"]
    assert (scope["from"], scope["to"], scope["days"], scope["alerts"], scope["false_alerts"], scope["bucket_s"]) == (
        0.0, 2 * DAY, 2.0, 7, 3, 0.0)
    assert evaluate(incidents, anomalies, alerts, table, entities, 0.0, 2 * DAY, catch_within=300.0, bucket=0.0) == report


@pytest.mark.parametrize(("spec_path", "width"), [("examples/requests.yaml", 60.0), ("examples/hosts.yaml", 0.0),
                                                   ("examples/logins.yaml", 0.0)])
def test_the_bucket_width_comes_from_the_spec(spec_path, width):
    assert reading_bucket(load_spec(spec_path)) == width


def test_replayed_alerts_carry_their_members():
    from tocsin.alerting.tables import alert_details
    from tocsin.store.sql import Store
    from tocsin.store.tables import alerts

    store = Store("sqlite://")
    with store.engine.begin() as conn:
        for key, entity, attributes in (("k1", "6.6.6.6", {"ip": "6.6.6.6", "members": ["u1", "u2"], "member_count": 2}),
                                        ("k2", "u3", {"ip": "1.1.1.1"})):
            conn.execute(alerts.insert().values(pipeline="p", alert_key=key, entity=entity, severity="critical",
                                                status="open", first_event_id="e", event_time=10.0, score=1.0, count=1,
                                                explanation=[]))
            conn.execute(alert_details.insert().values(pipeline="p", alert_key=key, pattern="rule", window_start=10.0,
                                                       window_end=70.0, last_event_time=20.0, suppressed=False,
                                                       attributes=attributes, channels=[]))
    assert sorted(replay_alerts(store, "p"), key=lambda a: a.entity) == [
        Alert("6.6.6.6", 10.0, 20.0, ("u1", "u2")), Alert("u3", 10.0, 20.0)]
