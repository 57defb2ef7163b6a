"""Topic helpers: create topics, count partitions, read a partition's records back.

Never trust the broker's high watermark for "how far is the end": tansu (and
a broker in the middle of a transaction) can report less than what is there.
:func:`read_partition` therefore uses the watermark only as a lower bound of
the end and then drains until the partition stays quiet.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic


def create_topics(client: dict[str, Any], topics: dict[str, int], timeout: float = 15.0) -> None:
    """Create ``{name: partitions}`` (replication factor 1 unless the broker decides); existing topics are kept."""
    admin = AdminClient(client)
    existing = set(admin.list_topics(timeout=timeout).topics)
    wanted = [NewTopic(name, partitions, 1) for name, partitions in topics.items() if name not in existing]
    if not wanted:
        return
    for name, future in admin.create_topics(wanted, request_timeout=timeout).items():
        try:
            future.result(timeout)
        except KafkaException as error:
            if error.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        metadata = admin.list_topics(timeout=timeout).topics
        if all(name in metadata and len(metadata[name].partitions) == n for name, n in topics.items()):
            return
        time.sleep(0.05)
    raise TimeoutError(f"topics {sorted(topics)} did not appear within {timeout} s")


def partition_count(client: dict[str, Any], topic: str, timeout: float = 10.0) -> int:
    """Number of partitions of ``topic`` (raises if it does not exist)."""
    metadata = AdminClient(client).list_topics(topic, timeout=timeout).topics.get(topic)
    if metadata is None or metadata.error is not None or not metadata.partitions:
        raise LookupError(f"topic {topic!r} does not exist on {client.get('bootstrap.servers')}")
    return len(metadata.partitions)


def read_partition(
    client: dict[str, Any], topic: str, partition: int, start: int = 0, quiet: float = 0.25, timeout: float = 30.0
) -> list[Any]:
    """Every record of ``topic``/``partition`` from offset ``start`` to the end, in order.

    The end is found without trusting the high watermark: read at least up to
    it, then until no record arrived for ``quiet`` seconds.
    """
    consumer = Consumer({**client, "group.id": f"tocsin-reader-{uuid.uuid4().hex}", "enable.auto.commit": False,
                         "auto.offset.reset": "earliest", "enable.partition.eof": False})
    try:
        _low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)
        consumer.assign([TopicPartition(topic, partition, max(0, start))])
        records: list[Any] = []
        last = start - 1
        deadline = time.monotonic() + timeout
        quiet_since = time.monotonic()
        reached: float | None = None  # when the watermark (a lower bound of the end) was reached
        while time.monotonic() < deadline:
            batch = [m for m in consumer.consume(10_000, 0.1) if m.error() is None]
            now = time.monotonic()
            if batch:
                records.extend(batch)
                last = batch[-1].offset()
                quiet_since = now
            if last >= high - 1:
                reached = reached or now
                # quiet, or busy with other writers' records: what landed before the call is read
                if now - quiet_since >= quiet or now - reached >= 2 * quiet:
                    return records
        raise TimeoutError(f"reading {topic}/{partition} from {start} did not finish within {timeout} s")
    finally:
        consumer.close()


def read_topic(client: dict[str, Any], topic: str, quiet: float = 0.5, timeout: float = 60.0) -> list[Any]:
    """Every record of every partition of ``topic`` (partition by partition)."""
    out: list[Any] = []
    for partition in range(partition_count(client, topic)):
        out.extend(read_partition(client, topic, partition, quiet=quiet, timeout=timeout))
    return out


def headers_of(message: Any) -> dict[str, bytes]:
    """A message's headers as a dict (the last value wins)."""
    return dict(message.headers() or [])


def iter_values(messages: Iterable[Any]) -> list[bytes]:
    return [m.value() for m in messages]
