"""The Kafka topic sinks of a worker: alert changes, dead letters and scored events, replay-safe.

Their records and keys (the formats consumers read, ``docs/streaming.md``):

- **alerts** (``source.alerts_topic``): one record per alert *change* (opened,
  updated, resolved), keyed ``{alert_key}/{count}`` (or ``{alert_key}/resolved``),
  the value the alert as of the anomaly that changed it (:func:`alert_change_record`);
- **dead letters** (``source.dlq_topic``): the raw bytes, keyed
  ``{topic}/{partition}/{offset}``, the reason in a header;
- **scored events** (``source.scored_topic``): every scored event, keyed by
  event id (at-least-once: deduplicate by key downstream).

Every record carries the input partition and offset in headers. How replays stay
free of duplicates (the published keys read back on takeover, counts that only
grow) is explained in :mod:`tocsin.kafka.sinks`; this module keeps that replay
state per stream and hands the worker's outputs to the producer.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import msgspec
import numpy as np

from tocsin.alerting import AlertChange
from tocsin.engine.outputs import scored_event_rows
from tocsin.kafka.consumer import PartitionBatch
from tocsin.kafka.sinks import (
    OFFSET_HEADER,
    PARTITION_HEADER,
    REASON_HEADER,
    SOURCE_HEADER,
    SOURCE_TS_HEADER,
    KafkaProducerHandle,
    TopicSink,
    alert_change_key,
    published_alert_counts,
)
from tocsin.sinks.base import ProcessedBatch, Sink
from tocsin.spec import KafkaSource
from tocsin.vocabulary import score_100

log = logging.getLogger(__name__)

_encode = msgspec.json.Encoder(enc_hook=lambda v: v.item() if isinstance(v, np.generic) else str(v)).encode


def alert_change_record(pipeline: str, change: AlertChange, kind: str, partition: int, offset: int) -> bytes:
    """The alerts topic's value for one alert change: the alert as of the anomaly that changed it."""
    alert, detail = change.alert, change.detail
    return _encode({
        "change": kind, "alert_key": alert["alert_key"], "pipeline": pipeline, "entity": alert["entity"],
        "pattern": detail["pattern"], "severity": alert["severity"], "status": alert["status"],
        "count": alert["count"], "score": alert["score"], "score_100": score_100(alert["score"]),
        "first_event_id": alert["first_event_id"], "event_id": change.event_id,
        "window_start": detail["window_start"], "window_end": detail["window_end"],
        "last_event_time": detail["last_event_time"], "suppressed": detail["suppressed"],
        "budget_cutoff": detail["budget_cutoff"], "rule": detail["rule"], "channels": detail["channels"],
        "explanation": alert["explanation"], "attributes": detail["attributes"],
        "partition": partition, "offset": offset,
    })


@dataclass
class _Replay:
    """One partition's replay state: what the topics already hold past its checkpoint."""

    #: per output topic: an offset below which no record of a later batch can land
    sink_floor: dict[str, int] = field(default_factory=dict)
    #: per output topic: keys already published past the checkpoint, not to send again
    published: dict[str, set[bytes]] = field(default_factory=dict)
    #: per alert: the highest count among its changes already on the alerts topic past the checkpoint
    published_counts: dict[str, int] = field(default_factory=dict)
    #: the suppression ends after this input offset
    replay_until: int = -1


class KafkaTopicSinks(Sink):
    """The worker's output topics behind one idempotent producer; acknowledged once per step."""

    component = "kafka"

    def __init__(self, source: KafkaSource, pipeline: str, client_id: str, ack_timeout: float) -> None:
        self.pipeline = pipeline
        self.ack_timeout = ack_timeout
        self.producer = KafkaProducerHandle(source.client_config(), **{"client.id": client_id})
        self.topics: dict[str, TopicSink] = {}
        for kind, topic in (("alerts", source.alerts_topic), ("dlq", source.dlq_topic), ("scored", source.scored_topic)):
            if topic:
                self.topics[kind] = TopicSink(self.producer, topic)
        self._replay: dict[str, _Replay] = {}

    # --- streams ----------------------------------------------------------------------

    def open(self, stream: Any, meta: dict[str, Any]) -> None:
        replay = _Replay(sink_floor={k: int(v) for k, v in meta.get("sink_floor", {}).items()})
        for kind, topic in self.topics.items():
            if kind == "scored":
                continue
            keys, highest = topic.published_keys(stream.key, replay.sink_floor.get(topic.topic, 0))
            if keys:
                replay.published[topic.topic] = keys
                replay.replay_until = max(replay.replay_until, highest)
                if kind == "alerts":
                    replay.published_counts = published_alert_counts(keys)
        self._replay[stream.name] = replay
        log.info("partition %s: %d output record(s) already published past its checkpoint", stream.name,
                 sum(len(k) for k in replay.published.values()))

    def close_stream(self, stream: Any) -> None:
        self._replay.pop(stream.name, None)

    def checkpoint_meta(self, stream: Any) -> dict[str, Any]:
        replay = self._replay[stream.name]
        for topic in self.topics.values():
            acked = topic.acked_offset(stream.key)
            if acked is not None:
                replay.sink_floor[topic.topic] = max(replay.sink_floor.get(topic.topic, 0), acked + 1)
        return {"sink_floor": dict(replay.sink_floor)}

    # --- batches ----------------------------------------------------------------------

    def send(self, item: ProcessedBatch) -> None:
        stream, raw, scored, outputs = item.stream, item.raw, item.scored, item.outputs
        replay = self._replay[stream.name]
        partition = stream.key
        p = str(partition).encode()
        alerts, dlq, scored_topic = self.topics.get("alerts"), self.topics.get("dlq"), self.topics.get("scored")
        if alerts is not None and outputs.changes.log:
            self._send_alert_changes(alerts, replay, item)
        if dlq is not None and outputs.dead_letters:
            skip = replay.published.get(dlq.topic, ())
            for row in outputs.dead_letters:
                key = f"{stream.name}/{row['position']}".encode()
                if key in skip:
                    continue
                dlq.send(partition, key, row["raw"], [
                    (PARTITION_HEADER, p), (OFFSET_HEADER, str(row["position"]).encode()),
                    (REASON_HEADER, row["reason"].encode()), (SOURCE_HEADER, row["source"].encode())])
        if scored_topic is not None:
            rows = outputs.scored_events or scored_event_rows(scored)  # the store's rows, when it keeps them too
            positions = scored.events.positions[np.flatnonzero(scored.scored)].tolist() if rows else []
            for row, position in zip(rows, positions):
                scored_topic.send(partition, row["event_id"].encode(), _encode(row),
                                  [(PARTITION_HEADER, p), (OFFSET_HEADER, str(position).encode())])
        if replay.published and len(raw) and int(raw.positions[-1]) > replay.replay_until:
            replay.published, replay.published_counts = {}, {}

    def _send_alert_changes(self, topic: TopicSink, replay: _Replay, item: ProcessedBatch) -> None:
        """One record per alert change (see :func:`alert_change_record`).

        While replaying past a checkpoint, a change is skipped when the topic already holds a change
        of the same alert at the same or a higher count (or its resolution): the replay may cut the
        stream differently, and counts on the topic must only grow."""
        scored, raw, partition = item.scored, item.raw, item.stream.key
        changes = item.outputs.changes.log
        p = str(partition).encode()
        batch_end = int(raw.positions[-1]) if len(raw) else raw.next_position - 1
        # an anomaly of an event carries its offset; one of no event (model drift, a silence) the batch's end
        rows = scored.anomaly_rows
        caused = [change.anomaly for change in changes if change.anomaly is not None]
        of_events = [i for i in caused if i < len(rows)]
        event_offsets = scored.events.positions[rows[of_events]].tolist() if of_events else []
        event_stamps = (raw.timestamps_ms(np.asarray(event_offsets, dtype=np.int64))
                        if event_offsets and isinstance(raw, PartitionBatch) else [None] * len(event_offsets))
        located = dict(zip(of_events, zip(event_offsets, event_stamps)))
        offsets_of = iter(located.get(i, (batch_end, None)) for i in caused)
        published = replay.published.get(topic.topic, ())
        counts = replay.published_counts
        for change in changes:
            alert_key, kind = change.alert["alert_key"], change.kind
            if change.anomaly is None:  # resolved: no anomaly caused it; the watermark passed within this batch
                offset, stamp = batch_end, None
                key = alert_change_key(alert_key, None)
                if key in published:
                    continue
            else:
                offset, stamp = next(offsets_of)
                key = alert_change_key(alert_key, change.alert["count"])
                if counts.get(alert_key, 0) >= change.alert["count"]:
                    continue
                if kind == "opened" and alert_key in counts:
                    kind = "updated"  # its opening is on the topic already, at a lower count
            headers = [(PARTITION_HEADER, p), (OFFSET_HEADER, str(offset).encode())]
            if stamp is not None:
                headers.append((SOURCE_TS_HEADER, str(stamp).encode()))
            topic.send(partition, key, alert_change_record(self.pipeline, change, kind, partition, offset), headers)

    def flush(self) -> None:
        self.producer.acknowledge(timeout=self.ack_timeout)

    def close(self) -> None:
        self.producer.close()
