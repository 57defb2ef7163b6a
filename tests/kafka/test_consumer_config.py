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


def test_a_consumed_batch_splits_by_partition_in_order_and_end_of_partition_markers_are_dropped():
    """The C-mapped accessors give what the messages hold: each partition's offsets, values and messages, in order."""
    from confluent_kafka import KafkaError, Message

    from tocsin.kafka.consumer import split_by_partition

    messages = [Message(topic="t", partition=p, offset=o, value=f"{p}:{o}".encode()) for p, o in
                [(0, 5), (1, 7), (0, 6), (1, 8), (0, 7)]]
    eof = Message(topic="t", partition=1, offset=9, error=KafkaError(KafkaError._PARTITION_EOF))
    parts = {b.partition: b for b in split_by_partition([*messages, eof])}
    assert sorted(parts) == [0, 1]
    assert parts[0].positions.tolist() == [5, 6, 7] and parts[0].next_position == 8
    assert parts[0].lines == [b"0:5", b"0:6", b"0:7"] and parts[1].lines == [b"1:7", b"1:8"]
    assert [m.offset() for m in parts[1].messages] == [7, 8]
    assert split_by_partition([eof]) == []
