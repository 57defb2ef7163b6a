"""DriverMetrics: a scored batch's counts (events, dead letters by path and reason, anomalies by severity,
latency and lag), the Kafka worker gauges, its own /metrics server, and every metric the dashboard queries."""

from __future__ import annotations

import math
import re
import time
import urllib.error
import urllib.request
from collections import Counter
from dataclasses import replace
from types import SimpleNamespace

import numpy as np
import pytest
import yaml

from tests.metrics_helpers import DEPLOY, WORKERS_ROW, grafana_metric_names
from tocsin.api.metrics import ServiceMetrics
from tocsin.engine.metrics import DEAD_LETTER_CODES, DriverMetrics
from tocsin.engine.pipeline import Pipeline, ScoredBatch
from tocsin.simulate import TransactionSimulator
from tocsin.simulate.transactions import _columns
from tocsin.spec import parse_spec
from tocsin.vocabulary import SEVERITIES

from .conftest import small_spec_dict

PIPELINE = "transactions"
WARMUP = 2_000
SCORED = 8_000
BAD = [{"tx_id": "bad1", "card_id": "c1", "ts": 1.0, "amount": "lots"}, {"tx_id": "bad2", "ts": 2.0, "amount": 1.0}, {"card_id": "c3"}]


@pytest.fixture(scope="module")
def scored(tmp_path_factory: pytest.TempPathFactory) -> ScoredBatch:
    """A real batch from a small warm pipeline: 8,000 decided events with anomalies, 3 dead letters."""
    spec = parse_spec(small_spec_dict(tmp_path_factory.mktemp("metrics")))
    events = TransactionSimulator.from_spec(spec.source).generate(WARMUP + SCORED)
    pipeline = Pipeline(spec)
    pipeline.process(events.take(slice(0, WARMUP)))
    columns = {k: v.tolist() for k, v in _columns(events.take(slice(WARMUP, None))).items()}
    records = [dict(zip(columns, row)) for row in zip(*columns.values())]
    batch = pipeline.process_records(records[:4_000] + BAD + records[4_000:])
    assert len(batch) == SCORED and len(batch.dead_letters) == len(BAD) and batch.is_anomaly.any()
    return batch


def value(metrics: DriverMetrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, {"pipeline": PIPELINE, **labels})


def test_observe_batch_counts_events_dead_letters_anomalies_and_times(scored: ScoredBatch) -> None:
    m = DriverMetrics(PIPELINE, "worker")
    received = time.monotonic() - 0.25
    by_severity = m.observe_batch(scored, "kafka", received)

    assert value(m, "tocsin_events_in_total", path="kafka") == SCORED + len(BAD)
    assert value(m, "tocsin_events_out_total", path="kafka") == SCORED
    assert value(m, "tocsin_dead_letters_total", path="kafka") == len(BAD)
    reasons = Counter(letter.code for letter in scored.dead_letters)
    for reason, count in reasons.items():
        assert value(m, "tocsin_dead_letters_by_reason_total", reason=reason) == count
    codes, counts = np.unique(scored.severity[scored.is_anomaly], return_counts=True)
    expected = {SEVERITIES[c]: n for c, n in zip(codes.tolist(), counts.tolist())}
    assert by_severity == expected and sum(expected.values()) == int(scored.is_anomaly.sum())
    for severity in ("info", "warning", "critical"):
        assert value(m, "tocsin_anomalies_total", severity=severity) == expected.get(severity, 0)
    assert value(m, "tocsin_batch_latency_seconds_count", path="kafka") == 1
    assert value(m, "tocsin_batch_latency_seconds_sum", path="kafka") == pytest.approx(scored.seconds)
    assert value(m, "tocsin_event_decision_lag_seconds_count", path="kafka") == 1
    assert 0.25 <= value(m, "tocsin_event_decision_lag_seconds_sum", path="kafka") < 5

    # a second path has its own series; no receive time: no lag observation; events_in can be given
    m.observe_batch(scored, "stream", None, n_in=SCORED + 10)
    assert value(m, "tocsin_events_in_total", path="stream") == SCORED + 10
    assert value(m, "tocsin_event_decision_lag_seconds_count", path="stream") == 0
    assert value(m, "tocsin_events_in_total", path="kafka") == SCORED + len(BAD)
    assert value(m, "tocsin_anomalies_total", severity="critical") == 2 * expected.get("critical", 0)


def test_dead_letters_are_counted_by_their_code(scored: ScoredBatch) -> None:
    m = DriverMetrics(PIPELINE, "runner")
    letters = [SimpleNamespace(code="oversize"), SimpleNamespace(code="wrong_type"), SimpleNamespace(code="wrong_type"),
               SimpleNamespace(code="malformed")]
    empty = replace(scored, events=scored.events.take(slice(0, 0)), is_anomaly=scored.is_anomaly[:0],
                    severity=scored.severity[:0], dead_letters=letters)
    assert m.observe_batch(empty, "stream", time.monotonic()) == {}
    assert value(m, "tocsin_dead_letters_total", path="stream") == 4
    assert value(m, "tocsin_events_in_total", path="stream") == 4
    assert value(m, "tocsin_event_decision_lag_seconds_count", path="stream") == 0  # nothing was decided
    for reason, count in {"oversize": 1, "wrong_type": 2, "malformed": 1}.items():
        assert value(m, "tocsin_dead_letters_by_reason_total", reason=reason) == count


def test_driver_series_exist_at_zero_and_two_instances_do_not_collide() -> None:
    runner, worker, api = DriverMetrics(PIPELINE, "runner"), DriverMetrics(PIPELINE, "worker", worker=3), DriverMetrics(PIPELINE, "api")
    assert value(runner, "tocsin_events_in_total", path="stream") == 0
    assert value(worker, "tocsin_events_in_total", path="kafka") == 0
    assert value(api, "tocsin_events_in_total", path="score") == value(api, "tocsin_events_in_total", path="events") == 0
    assert value(worker, "tocsin_process_info", driver="worker", worker="3") == 1
    assert value(runner, "tocsin_process_info", driver="runner", worker="0") == 1
    assert value(worker, "tocsin_rebalances_total", kind="lost") == 0 and value(worker, "tocsin_partitions_owned") == 0
    assert value(runner, "tocsin_partitions_owned") is None  # worker-only series stay off other drivers
    assert all(value(api, "tocsin_dead_letters_by_reason_total", reason=code) == 0 for code in DEAD_LETTER_CODES)
    assert runner.registry.get_sample_value("process_cpu_seconds_total") is not None
    assert runner.registry.get_sample_value("process_resident_memory_bytes") > 0
    with pytest.raises(ValueError, match="driver 'kafka'"):
        DriverMetrics(PIPELINE, "kafka")


def test_consumer_lag_rebalances_and_partitions_owned() -> None:
    m = DriverMetrics(PIPELINE, "worker")
    m.rebalanced("assigned", [0, 1, 2])
    for partition, lag in ((0, 5), (1, 1_000), (2, 0)):
        m.set_consumer_lag(partition, lag)
    m.set_consumer_lag(1, 40)
    assert [value(m, "tocsin_consumer_lag", partition=str(p)) for p in range(3)] == [5, 40, 0]
    assert value(m, "tocsin_partitions_owned") == 3 and value(m, "tocsin_rebalances_total", kind="assigned") == 1

    m.rebalanced("revoked", [1])  # the partitions given: their lag series go
    assert value(m, "tocsin_consumer_lag", partition="1") is None and value(m, "tocsin_consumer_lag", partition="0") == 5
    assert value(m, "tocsin_partitions_owned") == 2
    m.forget_partition(0)
    m.forget_partition(7)  # never seen: nothing to do
    assert value(m, "tocsin_consumer_lag", partition="0") is None and value(m, "tocsin_consumer_lag", partition="2") == 0
    m.rebalanced("lost", 5)  # a count: the gauge never goes below zero
    assert value(m, "tocsin_partitions_owned") == 0
    assert [value(m, "tocsin_rebalances_total", kind=k) for k in ("assigned", "revoked", "lost")] == [1, 1, 1]
    with pytest.raises(ValueError, match="rebalance kind 'moved'"):
        m.rebalanced("moved", 1)


def test_checkpoint_time_age_and_model() -> None:
    m = DriverMetrics(PIPELINE, "runner")
    assert math.isnan(value(m, "tocsin_checkpoint_age_seconds"))
    m.observe_checkpoint(0.02)
    m.observe_checkpoint(0.3)
    assert value(m, "tocsin_checkpoint_seconds_count") == 2 and value(m, "tocsin_checkpoint_seconds_sum") == pytest.approx(0.32)
    assert value(m, "tocsin_checkpoint_seconds_bucket", le="0.025") == 1
    assert 0 <= value(m, "tocsin_checkpoint_age_seconds") < 5
    m.watch_checkpoint(lambda: time.monotonic() - 100)  # the driver's own notion of the last checkpoint wins
    assert 100 <= value(m, "tocsin_checkpoint_age_seconds") < 105

    m.set_model("isolation_forest", 1, "warm")
    m.set_model("isolation_forest", 2, "warm")
    assert value(m, "tocsin_model_info", detector="isolation_forest", version="2", status="warm") == 1
    assert value(m, "tocsin_model_info", detector="isolation_forest", version="1", status="warm") is None


def test_serve_answers_metrics_over_http(scored: ScoredBatch) -> None:
    m = DriverMetrics(PIPELINE, "worker", worker=1)
    m.observe_batch(scored, "kafka", time.monotonic())
    server = m.serve("127.0.0.1", 0)
    try:
        assert server.port > 0 and server.url == f"http://127.0.0.1:{server.port}/metrics"
        with urllib.request.urlopen(server.url, timeout=10) as response:
            assert response.status == 200 and response.headers["Content-Type"].startswith("text/plain")
            text = response.read().decode()
    finally:
        server.stop()
    assert f'tocsin_events_in_total{{path="kafka",pipeline="{PIPELINE}"}} {float(SCORED + len(BAD))}' in text
    assert f'tocsin_events_out_total{{path="kafka",pipeline="{PIPELINE}"}} {float(SCORED)}' in text
    assert f'tocsin_process_info{{driver="worker",pipeline="{PIPELINE}",worker="1"}} 1.0' in text
    assert re.search(r"^process_resident_memory_bytes \S+$", text, re.M)
    server.stop()  # idempotent
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(server.url, timeout=2)


def exported_in_text(metrics: DriverMetrics, names: set[str]) -> None:
    exported = metrics.exported_names()
    assert names <= exported, f"queried but not exported: {sorted(names - exported)}"
    text = metrics.render().decode()
    for name in names:
        assert re.search(rf"^{name}[{{ ]", text, re.M), name


def test_every_metric_the_grafana_dashboard_queries_is_exported(scored: ScoredBatch) -> None:
    overview, workers = grafana_metric_names(), grafana_metric_names(WORKERS_ROW)
    assert {"tocsin_consumer_lag", "tocsin_rebalances_total", "tocsin_partitions_owned", "tocsin_dead_letters_by_reason_total",
            "tocsin_checkpoint_seconds_bucket", "tocsin_process_info", "process_cpu_seconds_total"} <= workers
    assert overview | workers == grafana_metric_names(None)

    api = ServiceMetrics(PIPELINE)  # the API's: DriverMetrics plus the queue
    api.watch_queue(lambda: 0)
    api.set_model("isolation_forest", 1, "warm")
    exported_in_text(api, overview)

    worker = DriverMetrics(PIPELINE, "worker", worker=2)  # a worker once it has run: a batch, a rebalance, a checkpoint
    worker.set_model("isolation_forest", 1, "warm")
    worker.rebalanced("assigned", [0])
    worker.set_consumer_lag(0, 12)
    worker.observe_batch(scored, "kafka", time.monotonic())
    worker.observe_checkpoint(0.01)
    exported_in_text(worker, workers | (overview - {"tocsin_queue_depth"}))  # the queue is the API's alone


def test_service_metrics_keep_the_attributes_the_service_uses() -> None:
    m = ServiceMetrics(PIPELINE)
    assert isinstance(m, DriverMetrics) and m.driver == "api"
    for name in ("events_in", "events_out", "dead_letters", "batch_latency", "decision_lag", "anomalies", "registry",
                 "set_model", "watch_checkpoint", "watch_queue", "render", "exported_names"):
        assert hasattr(m, name), name
    m.watch_queue(lambda: 7)
    assert value(m, "tocsin_queue_depth") == 7


def test_prometheus_config_scrapes_the_workers_metrics_ports() -> None:
    config = yaml.safe_load((DEPLOY / "prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert jobs["tocsin"]["static_configs"][0]["targets"] == ["127.0.0.1:8000"]  # the API
    workers = jobs["tocsin-workers"]
    assert workers["metrics_path"] == "/metrics"
    assert workers["static_configs"][0]["targets"] == ["127.0.0.1:9400", "127.0.0.1:9401"]  # metrics.port + worker index
