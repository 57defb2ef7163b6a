"""Data quality on Kafka: a table's raw rows on a topic reach the worker's profiler, a schema change is one
anomaly, and the last hour of a partition that goes idle still closes (by wall time) and is scored."""

from __future__ import annotations

import json

import pytest
import yaml
from confluent_kafka import Producer

from tocsin.engine.worker import KafkaWorker
from tocsin.kafka.producer import produce_events
from tocsin.simulate.tables import TableLoadSimulator
from tocsin.spec import StreamSettings, parse_spec
from tocsin.store.sql import Store

from .helpers import kafka_source, topics, worker_spec

pytestmark = [pytest.mark.kafka]


def test_table_rows_on_a_topic_are_profiled_and_an_idle_partition_closes_its_last_hour(tmp_path, kafka_brokers):
    with open("examples/quality.yaml") as handle:
        data = yaml.safe_load(handle)
    data["source"].update({"tables": 3, "warmup_days": 0.0, "incident_rate": 3.0, "seed": 5})
    data["detector"].update({"warmup_events": 100, "train_window": 100})
    data["quality"]["lateness"] = "2s"  # the idle partition's clock (wall time) passes the last hour's end within seconds
    data["store"] = {"url": f"sqlite:///{tmp_path}/store.db", "scored_events": True}
    data["checkpoint"] = {"dir": str(tmp_path / "ck"), "interval": "1s"}
    simulator = TableLoadSimulator.from_spec(parse_spec(data).source)
    rows = simulator._day_position(2)  # two whole days of loads
    names = topics(kafka_brokers, partitions=1)
    produce_events({"bootstrap.servers": kafka_brokers}, names["topic"], simulator, rows)
    # another source's row just past 23:00 moves the stream's clock; the tables' 22:00 hours then close only when
    # the idle partition's clock (wall time) passes them by the lateness: no row of theirs comes to close them
    last_hour = simulator.start_time + 2 * 86_400 - 2 * 3_600
    producer = Producer({"bootstrap.servers": kafka_brokers})
    producer.produce(names["topic"], json.dumps({"table": "heartbeat", "ts": last_hour + 3_630.0}).encode(), b"heartbeat")
    assert producer.flush(30) == 0
    worker = KafkaWorker(worker_spec(data, kafka_source(kafka_brokers, names), StreamSettings(checkpoint_url=str(tmp_path / "ck"))),
                         idle_exit=12.0)
    stats = worker.run()
    assert stats.records == rows + 1 and stats.dead_letters == 0
    expected = {(i["entity"], i["kind"]) for i in simulator.incidents(simulator.start_time + 2 * 86_400)
                if i["kind"] in ("field_added", "type_change")}
    anomalies = Store(data["store"]["url"]).anomalies(pipeline="quality", limit=10_000)
    schema = {(a["entity"], a["fields"]["change"]) for a in anomalies if a["detector"] == "schema"}
    kinds = {"field_added": "added", "type_change": "type_changed"}
    assert expected and {(entity, kinds[kind]) for entity, kind in expected} <= schema
    from sqlalchemy import create_engine, text

    with create_engine(data["store"]["url"]).connect() as connection:
        hours = dict(connection.execute(text("select entity, max(event_time) from scored_events group by entity")).all())
    # day 2 holds the loads of hours up to 22:00 (23:00's load comes after midnight)
    assert hours == dict.fromkeys(simulator._entity_names.tolist(), last_hour), "each table's last hour closed by wall time"
