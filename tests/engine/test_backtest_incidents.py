"""Backtests that speak series: incident-level recall, delay, precision, false alerts and VUS-PR.

A small host fleet (20 hosts, 1.5 days, many incidents) written by `tocsin simulate --scenario hosts`,
replayed through examples/hosts.yaml (series features, max_surprise, silence watch) with --incidents."""

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from tocsin.cli.main import app
from tocsin.engine.backtest import backtest
from tocsin.engine.incidents import Alert, AnomalyTimes, evaluate, load_incidents
from tocsin.engine.vus import buffered_labels, range_pr_auc, vus_pr
from tocsin.spec import load_spec

cli = CliRunner()
HOSTS_SPEC = "examples/hosts.yaml"
KIND_KEYS = {"incidents", "caught", "recall", "delay_median_s", "delay_p90_s"}


def invoke(*args):
    return cli.invoke(app, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    """20 hosts for 1.5 days (a reading a minute), one incident per host per day after the first day;
    seed 3 has silent hosts among its 13 incidents."""
    data = tmp_path_factory.mktemp("fleet") / "hosts.jsonl"
    result = invoke("simulate", "--scenario", "hosts", "--hosts", 20, "--events", 43_200, "--incident-rate", 1.0,
                    "--seed", 3, "--out", data)
    assert result.exit_code == 0, result.output
    return data, data.parent / "hosts.jsonl.incidents.json"


@pytest.fixture(scope="module")
def cli_report(fleet, tmp_path_factory):
    data, incidents = fleet
    out = tmp_path_factory.mktemp("report") / "report.json"
    result = invoke("backtest", HOSTS_SPEC, "--data", data, "--incidents", incidents, "--catch-within", "5m", "--json", out)
    assert result.exit_code == 0, result.output
    return json.loads(out.read_text()), result.output


def test_the_cli_reports_incident_figures_per_kind(fleet, cli_report):
    report, output = cli_report
    table = load_incidents(fleet[1])
    assert {"incidents", "incident_precision", "false_alerts_per_100_entities_per_day", "vus_pr"} <= set(report)
    kinds = report["incidents"]
    assert kinds and set(kinds) <= {i["kind"] for i in table}
    for kind, figures in kinds.items():
        assert KIND_KEYS <= set(figures), kind
        assert 0 <= figures["caught"] <= figures["detected"] <= figures["incidents"]
        assert 0.0 <= figures["recall"] <= 1.0 and figures["recall"] == round(figures["caught"] / figures["incidents"], 4)
        if figures["detected"]:
            assert -60 <= figures["delay_median_s"] <= figures["delay_p90_s"]
    assert sum(f["incidents"] for f in kinds.values()) == len(table), "every incident starts after the pipeline's warm-up"
    assert 0.0 <= report["vus_pr"] <= 1.0 and 0.0 <= report["incident_recall"] <= 1.0
    assert report["incident_precision"] is None or 0.0 <= report["incident_precision"] <= 1.0
    assert report["false_alerts_per_100_entities_per_day"] >= 0.0
    assert report["incident_scope"]["entities"] == 20 and report["incident_scope"]["catch_within_s"] == 300.0
    for kind in kinds:
        assert kind in output, "one table row per kind"
    assert "VUS-PR" in output


def test_silent_hosts_are_caught_by_silence_anomalies_without_any_event(fleet, cli_report):
    """A silent host has no reading to label or score: only the silence watch (ScoredBatch.notices)
    catches it, and the backtest collects those during the replay."""
    data, incidents = fleet
    report, _ = cli_report
    silent = [i for i in load_incidents(incidents) if i["kind"] == "silent_host"]
    assert silent, "the fixture's seed has silent hosts"
    events = [json.loads(line) for line in data.read_text().splitlines()]
    for incident in silent:
        assert not [e for e in events if e["host"] in incident["hosts"] and incident["start"] <= e["ts"] <= incident["end"]]
    assert report["silence_anomalies"] > 0
    figures = report["incidents"]["silent_host"]
    assert figures["incidents"] == len(silent) and figures["caught"] == len(silent)
    assert 0 < figures["delay_median_s"] <= 300


def test_the_function_gives_the_cli_figures_and_honours_the_warmup(fleet, cli_report):
    data, incidents = fleet
    table = load_incidents(incidents)
    spec = load_spec(HOSTS_SPEC)
    report = backtest(spec, data, None, incidents=table, catch_within=300.0)
    assert report["incidents"] == cli_report[0]["incidents"]
    assert report["vus_pr"] == cli_report[0]["vus_pr"]
    later = backtest(spec, data, None, incidents=table, catch_within=300.0, warmup_days=1.25)
    counted = [i for i in table if i["start"] >= later["incident_scope"]["from"]]
    assert sum(f["incidents"] for f in later["incidents"].values()) == len(counted) < len(table)
    assert later["incident_scope"]["days"] == pytest.approx(0.25, abs=0.01)
    assert "incidents" not in backtest(spec, data, None), "no incident figures without an incident table"


def test_a_bad_incident_file_is_a_usage_error(fleet, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"incidents": [{"kind": "cpu_spike", "start": 1.0}]}))
    result = invoke("backtest", HOSTS_SPEC, "--data", fleet[0], "--incidents", bad)
    assert result.exit_code == 2 and "end" in result.output
    result = invoke("backtest", HOSTS_SPEC, "--data", fleet[0], "--incidents", fleet[1], "--catch-within", "soon")
    assert result.exit_code == 2


# --- the incident figures on hand-made cases ---------------------------------------------------------

DAY = 86_400.0


def scored_table(entities, times, labels=None, scores=None):
    n = len(times)
    return {"entity": np.asarray(entities, dtype=str), "event_time": np.asarray(times, dtype=float),
            "score": np.asarray(scores if scores is not None else np.zeros(n), dtype=float),
            "label": np.asarray(labels if labels is not None else np.zeros(n), dtype=np.int8)}


def test_catch_window_delay_precision_and_false_alerts_by_hand():
    incidents = [
        {"kind": "cpu_spike", "hosts": ["a"], "start": 1_000.0, "end": 2_000.0},   # caught 60 s before its start
        {"kind": "cpu_spike", "hosts": ["b"], "start": 1_000.0, "end": 2_000.0},   # caught at the edge: start + 300
        {"kind": "cpu_spike", "hosts": ["c"], "start": 1_000.0, "end": 2_000.0},   # detected late, not caught
        {"kind": "rack_degraded", "hosts": ["d", "e"], "start": 1_000.0, "end": 5_000.0},  # caught on its second host
        {"kind": "silent_host", "hosts": ["f"], "start": 1_000.0, "end": 3_000.0},  # missed: 61 s too early
    ]
    anomalies = AnomalyTimes(["a", "b", "c", "e", "f", "z"], [940.0, 1_300.0, 1_301.0, 1_100.0, 939.0, 50_000.0])
    alerts = [Alert("a", 940.0, 1_500.0), Alert("e", 1_100.0, 1_200.0),
              Alert("a", 3_800.0, 3_900.0),   # within end + 30 min: about the incident
              Alert("b", 3_801.0, 3_900.0),   # 1 s after end + 30 min: false
              Alert("z", 50_000.0, 50_000.0),  # no incident: false
              Alert("model", 2_000.0, 2_000.0)]  # drift, not an entity: left out
    table = scored_table(["a"] * 2, [0.0, 2 * DAY])
    entities = {"a", "b", "c", "d", "e", "f", "z", "y", "x", "w"}
    report = evaluate(incidents, anomalies, alerts, table, entities, 0.0, 2 * DAY, catch_within=300.0)
    cpu, rack, silent = (report["incidents"][k] for k in ("cpu_spike", "rack_degraded", "silent_host"))
    assert (cpu["incidents"], cpu["caught"], cpu["detected"]) == (3, 2, 3)
    assert cpu["recall"] == 0.6667
    assert cpu["delay_median_s"] == 300.0 and cpu["delay_p90_s"] == 300.8  # delays -60, 300, 301
    assert (rack["caught"], rack["delay_median_s"]) == (1, 100.0)
    assert (silent["caught"], silent["detected"], silent["delay_median_s"]) == (0, 0, None)
    assert report["incident_recall"] == round(3 / 5, 4)
    assert report["incident_scope"]["alerts"] == 5 and report["incident_scope"]["false_alerts"] == 2
    assert report["incident_precision"] == 0.6
    assert report["false_alerts_per_100_entities_per_day"] == 100 * 2 / 10 / 2  # 2 false alerts, 10 entities, 2 days
    assert report["vus_pr"] is None, "no labelled row"


def test_warmup_days_leave_out_early_incidents_and_alerts():
    incidents = [{"kind": "cpu_spike", "hosts": ["a"], "start": 1_000.0, "end": 2_000.0},
                 {"kind": "cpu_spike", "hosts": ["a"], "start": DAY + 1_000.0, "end": DAY + 2_000.0}]
    anomalies = AnomalyTimes(["a", "a"], [1_000.0, 10_000.0])
    alerts = [Alert("a", 1_000.0, 1_000.0), Alert("a", 10_000.0, 10_000.0)]
    report = evaluate(incidents, anomalies, alerts, scored_table(["a"], [0.0]), {"a"}, 0.0, 3 * DAY, warmup_days=1.0)
    assert report["incidents"]["cpu_spike"] == {"incidents": 1, "caught": 0, "recall": 0.0, "delay_median_s": None,
                                                "delay_p90_s": None, "detected": 0}
    assert report["incident_scope"]["alerts"] == 0 and report["incident_scope"]["days"] == 2.0
    assert report["incident_precision"] is None and report["false_alerts_per_100_entities_per_day"] == 0.0


def test_vus_pr_of_the_backtest_treats_each_entity_as_a_series():
    """Readings of two hosts interleaved in time: the labelled range of one host is buffered over its own
    neighbouring readings, not over the other host's that fall between them."""
    times = np.repeat(np.arange(100) * 60.0, 2)
    entities = np.tile(["a", "b"], 100)
    labels = ((entities == "a") & (times >= 3_000) & (times < 3_600)).astype(np.int8)
    scores = labels.astype(float)
    report = evaluate([], AnomalyTimes([], []), [], scored_table(entities, times, labels, scores), {"a", "b"}, 0.0, times[-1])
    assert report["vus_pr"] == 1.0 and report["incident_scope"]["vus_pr_max_buffer"] == 10
    assert report["incident_scope"]["label_rate"] == 0.05


# --- VUS-PR -------------------------------------------------------------------------------------------


def point_adjusted_f1(labels, flagged):
    """Point-adjusted F1: every reading of a labelled range counts as flagged once one of them is."""
    adjusted = flagged.copy()
    edges = np.flatnonzero(np.diff(np.concatenate([[0], labels, [0]])))
    for start, end in zip(edges[0::2], edges[1::2]):
        if flagged[start:end].any():
            adjusted[start:end] = True
    tp = (adjusted & (labels > 0)).sum()
    precision, recall = tp / adjusted.sum(), tp / labels.sum()
    return 2 * precision * recall / (precision + recall)


def ranges_every(n=20_000, period=1_000, length=50, offset=500):
    labels = np.zeros(n, dtype=np.int8)
    for start in range(offset, n, period):
        labels[start:start + length] = 1
    return labels


def test_a_perfect_score_gets_one():
    labels = ranges_every()
    for buffer in (0, 1, 7, 20):
        assert vus_pr(labels, labels.astype(float), buffer) == 1.0
    assert vus_pr(labels, labels * 5.0 + 1.0, 20, thresholds=250) == 1.0


def test_a_random_score_gets_about_the_label_rate():
    labels = ranges_every()
    rate = labels.mean()
    values = [vus_pr(labels, np.random.default_rng(seed).random(len(labels)), 20) for seed in range(5)]
    assert rate * 0.8 < np.mean(values) < rate * 1.5, (rate, values)
    assert vus_pr(labels, np.random.default_rng(9).random(len(labels)), 0) == pytest.approx(rate, rel=0.2)


def test_one_hit_per_range_is_point_adjusted_perfect_but_scores_low():
    labels = ranges_every()
    rng = np.random.default_rng(1)
    scores = rng.random(len(labels)) * 0.5
    scores[np.arange(525, len(labels), 1_000)] = 1.0   # one reading in the middle of each 50-reading range
    assert point_adjusted_f1(labels, scores > 0.9) == 1.0
    assert vus_pr(labels, scores, 20) < 0.15
    covering = rng.random(len(labels)) * 0.5 + labels * 0.6   # flags every reading of every range
    assert vus_pr(labels, covering, 20) == 1.0
    late = rng.random(len(labels)) * 0.5
    for start in range(500, len(labels), 1_000):
        late[start + 5:start + 50] += 0.6   # covers each range from its sixth reading on
    assert 0.85 < vus_pr(labels, late, 20) < 1.0


def test_early_warnings_inside_the_buffer_earn_credit():
    labels = ranges_every()
    scores = np.random.default_rng(2).random(len(labels)) * 0.5
    for start in range(500, len(labels), 1_000):
        scores[start - 3:start + 50] += 0.6   # rises three readings before each range
    assert range_pr_auc(labels, scores, 0) < range_pr_auc(labels, scores, 10) < vus_pr(labels, scores, 20) + 0.05
    assert vus_pr(labels, scores, 20) > range_pr_auc(labels, scores, 0)


def test_matches_the_authors_reference_implementation():
    """Values of RangeAUC_volume_opt (the authors' `vus` package 0.0.6, 250 thresholds) on this input."""
    rng = np.random.default_rng(2022)
    labels = np.zeros(400, dtype=int)
    labels[50:70] = labels[150:153] = labels[300:340] = labels[395:] = 1
    scores = rng.random(400) * 0.7 + labels * rng.random(400) * 0.6
    scores[140:150] += 0.3
    scores = np.round(scores, 2)  # ties
    for buffer, expected in ((0, 0.5799706054428243), (5, 0.5902677755512972), (12, 0.6185282210387008)):
        assert vus_pr(labels, scores, buffer, thresholds=250) == pytest.approx(expected, abs=1e-12)
    assert vus_pr(labels, scores, 12) == pytest.approx(0.6228278087155936, abs=1e-12), "every distinct score a threshold"


def test_buffers_stay_inside_their_series():
    labels = np.array([0, 0, 0, 1, 1, 0, 0, 0])
    groups = np.array(["a"] * 5 + ["b"] * 3)
    assert buffered_labels(labels, 6).round(3).tolist() == [0.707, 0.816, 0.913, 1.0, 1.0, 0.913, 0.816, 0.707]
    assert buffered_labels(labels, 6, groups).round(3).tolist() == [0.707, 0.816, 0.913, 1.0, 1.0, 0.0, 0.0, 0.0]
    one = ranges_every(5_000)
    scores = np.random.default_rng(4).random(len(one)) + one * 0.3
    twice = vus_pr(np.tile(one, 2), np.tile(scores, 2), 10, groups=np.repeat([0, 1], len(one)))
    assert twice == pytest.approx(vus_pr(one, scores, 10), abs=1e-12), "two identical series pool to the same figure"


def test_edge_cases():
    assert vus_pr(np.zeros(10), np.random.default_rng(0).random(10), 4) is None
    labels = np.array([0, 1, 1, 0, 0, 0])
    with_nan = np.array([np.nan, 0.9, 0.8, 0.1, 0.2, np.nan])
    assert vus_pr(labels, with_nan, 2) == 1.0, "a missing score ranks last"
    with pytest.raises(ValueError):
        vus_pr(labels, with_nan[:4], 2)
    with pytest.raises(ValueError):
        vus_pr(labels, with_nan, -1)
