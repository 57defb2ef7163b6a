"""Producer sinks: alerts, dead letters and (optionally) scored events to topics.

Idempotency on replay (why no Kafka transactions)
-------------------------------------------------
The worker's position lives in the checkpoint store, next to the state, not
in Kafka. A Kafka transaction cannot commit atomically with a write to Redis
or PostgreSQL, so whichever of the two goes first leaves a window where a
crash duplicates or loses alerts. (The tansu broker used in tests also turns
out to commit, not abort, a fenced producer's open transaction, and shows
aborted records to readers.) Instead:

* every record carries its identity: the key (``{alert_key}/{count}`` or
  ``{alert_key}/resolved`` for alert changes, ``topic/partition/offset`` for
  dead letters) and headers naming the input partition and offset;
* input partition ``p`` writes to output partition ``p % partitions``, with an
  idempotent producer (no duplicates from the client's own retries);
* a checkpoint records, per output topic, an offset below which nothing of a
  later batch can land (one past the highest offset this worker saw acked);
* when a worker takes a partition over it reads each output partition from
  that offset to its end and collects the keys already published for ``p``
  (:meth:`TopicSink.published_keys`); while replaying up to the highest input
  offset among them it does not produce those keys again.

Alert changes need one more rule, because a replay may cut the stream into
batches differently: an alert's change is keyed by its anomaly count, and the
record for count *n* is the alert as of its *n*-th anomaly whatever the cut, but
the replay may report it at counts the first run did not (5 where it reported
3 and 10). So while replaying, a change is not produced when the topic already
holds one of the same alert at the same or a higher count
(:func:`published_alert_counts`): per alert, counts on the topic only grow.

A killed worker's in-flight records land (or not) long before its partitions
are reassigned (the group waits a session timeout), so the read sees them.
The scored-events topic is keyed by event id but not recovered this way (it
carries every event): it is at-least-once, deduplicate by key downstream or
make it a compacted topic.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import KafkaException, Producer

from tocsin.kafka.admin import headers_of, partition_count, read_partition

log = logging.getLogger(__name__)

PARTITION_HEADER = "tocsin-partition"
OFFSET_HEADER = "tocsin-offset"
SOURCE_TS_HEADER = "tocsin-source-ts"
REASON_HEADER = "tocsin-reason"
SOURCE_HEADER = "tocsin-source"


def alert_change_key(alert_key: str, count: int | None) -> bytes:
    """The key of an alert change on the alerts topic: the alert as of its ``count``-th anomaly, or
    its resolution (``count`` None). The same change gets the same key however the stream is cut.

    >>> alert_change_key("card7:rate:1767229200000", 12), alert_change_key("card7:rate:1767229200000", None)
    (b'card7:rate:1767229200000/12', b'card7:rate:1767229200000/resolved')
    """
    return f"{alert_key}/{'resolved' if count is None else count}".encode()


def published_alert_counts(keys: set[bytes]) -> dict[str, int]:
    """Per alert key, the highest count among the alert-change ``keys`` (resolutions not counted).

    >>> published_alert_counts({b"c1:rate:1/3", b"c1:rate:1/10", b"c1:rate:1/resolved", b"c/2:amount:5/1"})
    {'c/2:amount:5': 1, 'c1:rate:1': 10}
    """
    counts: dict[str, int] = {}
    for key in sorted(keys):
        alert_key, _, suffix = key.decode().rpartition("/")
        if suffix.isdigit():
            counts[alert_key] = max(counts.get(alert_key, 0), int(suffix))
    return counts


class SinkError(RuntimeError):
    """A sink did not acknowledge a batch (broker down, records expired)."""


@dataclass
class _Outgoing:
    topic: str
    partition: int
    key: bytes
    value: bytes
    headers: list[tuple[str, bytes]]


@dataclass
class DeliveryTracker:
    """Counts what the broker acknowledged and keeps what it refused, per producer."""

    failed: list[tuple[_Outgoing, str]] = field(default_factory=list)
    #: (topic, partition) -> highest acknowledged offset
    acked: dict[tuple[str, int], int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)


def producer_config(client: dict[str, Any], **overrides: Any) -> dict[str, Any]:
    """An idempotent, acks=all producer tuned for batches (5 ms linger, big queues)."""
    return {
        **client,
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 5,
        "batch.num.messages": 10_000,
        "queue.buffering.max.messages": 1_000_000,
        "queue.buffering.max.kbytes": 1_048_576,
        "message.timeout.ms": 60_000,
        **overrides,
    }


class TopicSink:
    """Writes records of one kind to one topic, partition ``p % partitions`` for input partition ``p``."""

    def __init__(self, producer: KafkaProducerHandle, topic: str) -> None:
        self.handle = producer
        self.topic = topic
        self.partitions = partition_count(producer.client, topic)

    def output_partition(self, input_partition: int) -> int:
        return input_partition % self.partitions

    def send(self, input_partition: int, key: bytes, value: bytes, headers: list[tuple[str, bytes]]) -> None:
        self.handle.send(_Outgoing(self.topic, self.output_partition(input_partition), key, value, headers))

    def acked_offset(self, input_partition: int) -> int | None:
        """Highest offset acknowledged so far in the output partition of ``input_partition``."""
        return self.handle.tracker.acked.get((self.topic, self.output_partition(input_partition)))

    def published_keys(self, input_partition: int, start: int) -> tuple[set[bytes], int]:
        """Keys this topic already holds for ``input_partition`` from ``start`` on, and
        the highest input offset among them (-1 if none)."""
        records = read_partition(self.handle.client, self.topic, self.output_partition(input_partition), start)
        wanted = str(input_partition).encode()
        keys: set[bytes] = set()
        highest = -1
        for message in records:
            headers = headers_of(message)
            if headers.get(PARTITION_HEADER) != wanted:
                continue
            keys.add(message.key())
            highest = max(highest, int(headers.get(OFFSET_HEADER, b"-1")))
        return keys, highest


class KafkaProducerHandle:
    """One idempotent producer shared by a worker's sinks, with batch acknowledgement."""

    def __init__(self, client: dict[str, Any], **overrides: Any) -> None:
        self.client = client
        self.tracker = DeliveryTracker()
        self.producer = Producer(producer_config(client, **overrides))

    def send(self, record: _Outgoing) -> None:
        tracker = self.tracker

        def delivered(error: Any, message: Any) -> None:
            with tracker.lock:
                if error is not None:
                    tracker.failed.append((record, str(error)))
                else:
                    key = (message.topic(), message.partition())
                    if message.offset() > tracker.acked.get(key, -1):
                        tracker.acked[key] = message.offset()

        while True:
            try:
                self.producer.produce(record.topic, value=record.value, key=record.key, partition=record.partition,
                                      headers=record.headers, on_delivery=delivered)
                return
            except BufferError:  # local queue full: let deliveries drain
                self.producer.poll(0.05)

    def acknowledge(self, timeout: float) -> None:
        """Wait up to ``timeout`` s until every record sent so far is acknowledged.

        Raises :class:`SinkError` if some are still in flight or were refused; the
        refused ones are sent again, so calling this until it returns delivers all.
        """
        remaining = self.producer.flush(timeout)
        with self.tracker.lock:
            failed, self.tracker.failed = self.tracker.failed, []
        for record, _reason in failed:
            self.send(record)
        if failed:
            raise SinkError(f"{len(failed)} record(s) refused by the broker ({failed[0][1]}); re-sent")
        if remaining:
            raise SinkError(f"{remaining} record(s) not acknowledged within {timeout:.1f} s")

    def close(self, timeout: float = 10.0) -> None:
        """Flush what is in flight, then destroy the client: its threads stop now, not when the garbage
        collector gets to it (until then they would keep reconnecting to a broker that has gone)."""
        try:
            self.producer.flush(timeout)
        except KafkaException:  # pragma: no cover - closing anyway
            pass
        try:
            self.producer.close()
        except (KafkaException, RuntimeError):  # pragma: no cover - already closed
            pass
