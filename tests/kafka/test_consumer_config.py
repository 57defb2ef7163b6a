"""The group consumer's settings: what the worker's guarantees and throughput rest on."""

from tocsin.spec import KafkaSource
from tocsin.kafka.consumer import consumer_config


def test_offsets_are_never_committed_or_stored_behind_the_worker():
    config = consumer_config(KafkaSource(kind="kafka", group="g"))
    assert config["enable.auto.commit"] is False
    assert config["enable.auto.offset.store"] is False
    assert config["isolation.level"] == "read_committed"
    assert config["group.id"] == "g"


def test_prefetch_depth_comes_from_the_source_and_overrides_win():
    source = KafkaSource(kind="kafka", prefetch_messages=250_000, client={"security.protocol": "SSL"})
    config = consumer_config(source)
    assert config["queued.min.messages"] == 250_000
    assert config["security.protocol"] == "SSL"
    assert KafkaSource(kind="kafka").prefetch_messages == 1_000_000
    assert consumer_config(source, **{"queued.min.messages": 7})["queued.min.messages"] == 7
