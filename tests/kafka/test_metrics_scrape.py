"""A running Kafka worker process (no API) serves Prometheus metrics on its own port: scraped over HTTP
while it consumes, its counters match what it processed, and the worker series the Grafana dashboard
queries (consumer lag per partition, partitions owned, rebalances, process info) are there."""

from __future__ import annotations

import re
import signal
import time

import httpx
import pytest

from tocsin.api.server import free_port
from tocsin.kafka.producer import produce_events
from tocsin.spec import StreamSettings
from tocsin.store.sql import Store

from .helpers import kafka_source, simulator, small_spec_data, start_worker, topics

pytestmark = pytest.mark.kafka

EVENTS = 12_000


def sample(text: str, name: str, **labels: str) -> float | None:
    """The value of the series ``name{labels}`` in a scrape (labels in any order), or None."""
    for line in text.splitlines():
        if not line.startswith(name + "{") and line.split(" ")[0] != name:
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', line.split(" ")[0]))
        if all(found.get(k) == v for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return None


def test_a_worker_process_is_scraped_on_its_metrics_port(tmp_path, kafka_brokers) -> None:
    data = small_spec_data(f"sqlite:///{tmp_path}/store.db", tmp_path / "ck")
    port = free_port()
    data["metrics"] = {"port": port}
    names = topics(kafka_brokers)
    sent = produce_events({"bootstrap.servers": kafka_brokers}, names["topic"], simulator(data), EVENTS, malformed_share=0.01)
    worker = start_worker(tmp_path, data, kafka_source(kafka_brokers, names), StreamSettings(checkpoint_url=str(tmp_path / "ck")), "0")
    url = f"http://127.0.0.1:{port}/metrics"
    text = ""
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            assert worker.poll() is None, (tmp_path / "worker-0.log").read_text()[-3000:]
            try:
                text = httpx.get(url, timeout=2).text
            except httpx.HTTPError:
                time.sleep(0.2)
                continue
            if (sample(text, "tocsin_events_in_total", path="kafka") or 0) >= EVENTS and sample(text, "tocsin_consumer_lag", partition="1") is not None:
                break
            time.sleep(0.3)
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(30)

    assert sample(text, "tocsin_events_in_total", pipeline="transactions", path="kafka") == EVENTS
    assert sample(text, "tocsin_events_out_total", path="kafka") == EVENTS - sent["malformed"]
    assert sample(text, "tocsin_dead_letters_total", path="kafka") == sent["malformed"] > 0
    by_reason = sum(v for line in text.splitlines() if line.startswith("tocsin_dead_letters_by_reason_total{")
                    for v in [float(line.rsplit(" ", 1)[1])])
    assert by_reason == sent["malformed"]
    store = Store(data["store"]["url"])
    anomalies = sum(sample(text, "tocsin_anomalies_total", severity=s) for s in ("info", "warning", "critical"))
    assert anomalies == store.count("anomalies") > 0
    assert sample(text, "tocsin_batch_latency_seconds_count", path="kafka") >= 1
    assert sample(text, "tocsin_event_decision_lag_seconds_count", path="kafka") >= 1
    assert sample(text, "tocsin_partitions_owned") == 2
    assert sample(text, "tocsin_rebalances_total", kind="assigned") >= 1
    for partition in ("0", "1"):
        lag = sample(text, "tocsin_consumer_lag", partition=partition)
        assert lag is not None and lag >= 0
    assert sample(text, "tocsin_process_info", driver="worker", worker="0") == 1
    assert sample(text, "tocsin_model_info", detector="isolation_forest", status="warm") == 1
    assert sample(text, "process_resident_memory_bytes") > 0
