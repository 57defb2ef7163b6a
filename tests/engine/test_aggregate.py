"""Event-time buckets: readings equal a plain per-bucket computation whatever the batch cuts (and across a
checkpoint), late events become dead letters with their reason, and spec mistakes name the field and the fix."""


import numpy as np
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import binom, binomtest

from tests.state_helpers import through_npz
from tocsin.engine.pipeline import Pipeline
from tocsin.spec import SpecError, parse_spec

START = 1_767_571_200.0


def spec(**changes):
    with open("examples/requests.yaml") as handle:
        data = yaml.safe_load(handle)
    data["detector"].update(warmup_events=100, train_window=100)
    data.update(changes)
    return parse_spec(data)


def requests(n=3_000, seed=0):
    rng = np.random.default_rng(seed)
    times = START + np.sort(rng.uniform(0, 3_600, n))
    return [{"id": f"r{i}", "service": f"s{rng.integers(3)}", "timestamp": float(t), "endpoint": f"/e{rng.integers(4)}",
             "latency_ms": float(rng.lognormal(3, 0.5)), "status": float(rng.choice([200, 200, 200, 404, 503]))}
            for i, t in enumerate(times)]


def quantile_at_least(values, q):
    """The spec's latency quantiles are lower bounds: the largest order statistic X_(l) with P(X_(l) <= the q quantile)
    = P(Binomial(n, q) >= l) of at least 0.975 (the first one when none is)."""
    ordered = np.sort(values)
    n = len(ordered)
    ranks = [l for l in range(1, n + 1) if binom.sf(l - 1, n, q) >= 0.975]
    return ordered[max(ranks, default=1) - 1]


def expected_readings(records, until):
    """Per (service, minute) readings of the closed minutes, computed the obvious way."""
    groups = {}
    for r in records:
        minute = np.floor(r["timestamp"] / 60) * 60
        groups.setdefault((minute, r["service"]), []).append(r)
    out = {}
    for (minute, service), rows in sorted(groups.items()):
        if minute + 60 + 10 > until:
            continue
        latency = np.array([r["latency_ms"] for r in rows])
        errors = sum(r["status"] >= 500 for r in rows)  # the spec's error_rate is the share's Wilson lower bound
        at_least = binomtest(errors, len(rows)).proportion_ci(confidence_level=0.95, method="wilson").low
        out[f"{service}@{minute:.0f}"] = (len(rows), max(at_least, 0.0), quantile_at_least(latency, 0.5),
                                          quantile_at_least(latency, 0.95))
    return out


def run(pipeline_spec, records, cuts, state_at=None):
    pipeline, readings, late = Pipeline(pipeline_spec), {}, []
    i = c = 0
    while i < len(records):
        size = cuts[c % len(cuts)]
        scored = pipeline.process_records(records[i:i + size], source="test")
        events = scored.events
        for row in range(len(events)):
            readings[str(events.ids[row])] = tuple(float(events.numeric[m][row]) for m in
                                                   ("requests", "error_rate", "latency_p50", "latency_p95"))
        late += [letter.reason for letter in scored.dead_letters]
        i += size
        c += 1
        if state_at == c:
            pipeline = through_npz(pipeline.state_dict(), Pipeline(pipeline_spec))
    return readings, late, pipeline


def test_readings_are_the_closed_minutes_per_service():
    records = requests()
    readings, late, pipeline = run(spec(), records, [len(records)])
    watermark = pipeline.admission.watermark
    expected = expected_readings(records, watermark)
    assert readings.keys() == expected.keys() and len(expected) > 150
    np.testing.assert_allclose([readings[k] for k in expected], [expected[k] for k in expected], rtol=1e-12)
    assert late == []


@settings(max_examples=20, deadline=None)
@given(cuts=st.lists(st.integers(1, 700), min_size=1, max_size=5), state_at=st.one_of(st.none(), st.integers(1, 5)))
def test_readings_and_scores_do_not_depend_on_batch_cuts_or_a_restart(cuts, state_at):
    records = requests(1_500, seed=1)
    whole = run(spec(), records, [len(records)])[0]
    assert run(spec(), records, cuts, state_at)[0] == whole


def test_an_event_for_a_closed_bucket_is_a_late_dead_letter_with_its_reason():
    records = requests(600, seed=2)
    straggler = {**records[10], "id": "straggler"}  # a request from the first minutes, arriving at the end
    pipeline = Pipeline(spec())
    pipeline.process_records(records, source="test")
    scored = pipeline.process_records([straggler], source="test")
    (letter,) = scored.dead_letters
    assert letter.code == "late" and "falls in a bucket that closed" in letter.reason and "aggregate.lateness" in letter.reason


def test_aggregate_spec_mistakes_name_the_field_and_the_fix():
    with open("examples/requests.yaml") as handle:
        metrics = yaml.safe_load(handle)["aggregate"]["metrics"]

    def with_metric(metric):
        return {"every": "1m", "metrics": [*metrics, metric]}

    added = len(metrics)  # the index of the metric a case adds

    with pytest.raises(SpecError, match=r"features.0.field: 'latency_ms' is not an aggregate metric"):
        spec(features=[{"kind": "series", "field": "latency_ms"}])
    with pytest.raises(SpecError, match=r"needs `where`"):
        spec(aggregate=with_metric({"name": "errors", "kind": "share"}))
    with pytest.raises(SpecError, match=r"where 'status => 500' is not `field op value`"):
        spec(aggregate=with_metric({"name": "errors", "kind": "share", "where": "status => 500"}))
    with pytest.raises(SpecError, match=rf"aggregate.metrics.{added}.where: 'code' is not a declared numeric field"):
        spec(aggregate=with_metric({"name": "errors", "kind": "share", "where": "code >= 500"}))
    with pytest.raises(SpecError, match=rf"aggregate.metrics.{added}.field: 'bytes' is not a declared numeric field"):
        spec(aggregate=with_metric({"name": "p99", "kind": "quantile", "field": "bytes", "q": 0.99}))
    with pytest.raises(SpecError, match=r"needs `q`"):
        spec(aggregate=with_metric({"name": "p99", "kind": "quantile", "field": "latency_ms"}))
    with pytest.raises(SpecError, match=r"metrics \['requests'\] are named twice"):
        spec(aggregate=with_metric({"name": "requests", "kind": "count"}))


def test_the_worst_endpoint_share_is_the_largest_among_endpoints_with_enough_requests():
    with open("examples/requests.yaml") as handle:
        data = yaml.safe_load(handle)
    data["aggregate"]["metrics"].append({"name": "worst_error_rate", "kind": "share", "where": "status >= 500",
                                         "worst_of": "endpoint", "min_events": 3})
    records = requests(3_000, seed=4)
    for r in records:
        if r["endpoint"] == "/e2":  # one endpoint fails, the others keep their usual mix
            r["status"] = 503.0
    pipeline = Pipeline(parse_spec(data))
    scored = pipeline.process_records(records, source="test")
    worst = dict(zip(scored.events.ids.tolist(), scored.events.numeric["worst_error_rate"].tolist()))
    rows_of = {}
    for r in records:
        rows_of.setdefault((f"{r['service']}@{np.floor(r['timestamp'] / 60) * 60:.0f}", r["endpoint"]), []).append(r["status"] >= 500)
    for reading, value in worst.items():
        eligible = [np.mean(v) for (rid, _), v in rows_of.items() if rid == reading and len(v) >= 3]
        assert value == pytest.approx(max(eligible, default=0.0)), reading
    assert np.mean([v == 1.0 for v in worst.values()]) > 0.5, "the failing endpoint shows as a share of 1"
    with pytest.raises(SpecError, match=r"worst_of: 'service' is not a declared categorical field"):
        data["aggregate"]["metrics"][-1]["worst_of"] = "service"
        parse_spec(data)


def test_where_filters_counts_sums_and_distinct_worst_of_takes_sums_and_sqrt_steadies_counts():
    """The retail readings: refunds of a bucket (a filtered sum and count), the worst till's refunds (worst_of on a
    sum) and counts under Anscombe's square root, each against the obvious computation."""
    with open("examples/requests.yaml") as handle:
        data = yaml.safe_load(handle)
    data["aggregate"]["metrics"] = [
        {"name": "errors", "kind": "count", "where": "status >= 500"},
        {"name": "error_latency", "kind": "sum", "field": "latency_ms", "where": "status >= 500"},
        {"name": "error_endpoints", "kind": "distinct", "field": "endpoint", "where": "status >= 500"},
        {"name": "worst_endpoint_latency", "kind": "sum", "field": "latency_ms", "worst_of": "endpoint", "min_events": 1},
        {"name": "requests_sqrt", "kind": "count", "transform": "sqrt"},
    ]
    data["features"] = [{"kind": "series", "field": "errors", "season": "none"}]
    data["detector"].update(features=["errors_surprise"], warmup_events=100, train_window=100)
    records = requests(3_000, seed=5)
    scored = Pipeline(parse_spec(data)).process_records(records, source="test")
    events = scored.events
    groups = {}
    for r in records:
        groups.setdefault(f"{r['service']}@{np.floor(r['timestamp'] / 60) * 60:.0f}", []).append(r)
    assert len(events) > 100
    for row, reading in enumerate(events.ids.tolist()):
        rows = groups[reading]
        failing = [r for r in rows if r["status"] >= 500]
        by_endpoint = {}
        for r in rows:
            by_endpoint[r["endpoint"]] = by_endpoint.get(r["endpoint"], 0.0) + r["latency_ms"]
        got = {name: float(events.numeric[name][row]) for name in events.numeric}
        assert got["errors"] == len(failing)
        assert got["error_latency"] == pytest.approx(sum(r["latency_ms"] for r in failing))
        assert got["error_endpoints"] == len({r["endpoint"] for r in failing})
        assert got["worst_endpoint_latency"] == pytest.approx(max(by_endpoint.values()))
        assert got["requests_sqrt"] == pytest.approx(2 * np.sqrt(len(rows) + 3 / 8))


def test_a_share_as_a_lower_bound_is_what_the_share_is_at_least_for_its_worst_value_too():
    """transform: lower_bound, against scipy's Wilson interval: per bucket, and per endpoint before worst_of picks."""
    with open("examples/requests.yaml") as handle:
        data = yaml.safe_load(handle)
    data["aggregate"]["metrics"] = [
        {"name": "error_rate", "kind": "share", "where": "status >= 500"},
        {"name": "errors_at_least", "kind": "share", "where": "status >= 500", "transform": "lower_bound"},
        {"name": "worst_at_least", "kind": "share", "where": "status >= 500", "worst_of": "endpoint", "min_events": 3,
         "transform": "lower_bound"},
    ]
    data["features"] = [{"kind": "series", "field": "errors_at_least", "season": "none"}]
    data["detector"].update(features=["errors_at_least_surprise"], warmup_events=100, train_window=100)
    records = requests(3_000, seed=6)
    events = Pipeline(parse_spec(data)).process_records(records, source="test").events

    def at_least(flags):
        return max(binomtest(int(sum(flags)), len(flags)).proportion_ci(confidence_level=0.95, method="wilson").low, 0.0)

    cells = {}
    for r in records:
        reading = f"{r['service']}@{np.floor(r['timestamp'] / 60) * 60:.0f}"
        cells.setdefault(reading, {}).setdefault(r["endpoint"], []).append(r["status"] >= 500)
    assert len(events) > 100
    for row, reading in enumerate(events.ids.tolist()):
        flags = [f for endpoint in cells[reading].values() for f in endpoint]
        assert events.numeric["errors_at_least"][row] == pytest.approx(at_least(flags), rel=1e-9, abs=1e-12)
        assert events.numeric["errors_at_least"][row] <= events.numeric["error_rate"][row]
        worst = max((at_least(v) for v in cells[reading].values() if len(v) >= 3), default=0.0)
        assert events.numeric["worst_at_least"][row] == pytest.approx(worst, rel=1e-9, abs=1e-12)
    with pytest.raises(SpecError, match=r"transform lower_bound applies to kinds share and quantile only"):
        data["aggregate"]["metrics"].append({"name": "n", "kind": "count", "transform": "lower_bound"})
        parse_spec(data)


def test_a_run_summary_counts_the_records_read_beside_the_readings_scored(tmp_path):
    """Request logs: 20,000 requests read become a few hundred readings; the summary says both."""
    from tocsin.engine.runner import Runner
    from tocsin.sources.simulator import SimulatorSource
    from tocsin.store.sql import Store

    pipeline_spec = spec()
    source = SimulatorSource(pipeline_spec.source.model_copy(update={"services": 5}), max_events=20_000)
    runner = Runner(pipeline_spec, source, store=Store(f"sqlite:///{tmp_path / 'r.db'}"), checkpoints=False)
    summary = runner.run(resume=False).summary()
    assert summary["records"] == 20_000 and 0 < summary["events"] < 2_000
    assert summary["records_per_s"] > summary["events_per_s"] > 0
