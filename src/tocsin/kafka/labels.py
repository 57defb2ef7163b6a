"""Labels from a Kafka topic into every owned partition's pipeline, each applied exactly once.

Chargebacks and closed incidents arrive on their own topic (``source.labels_topic``), one JSON object per
label, shaped like an event of the stream plus its verdict::

    {"card_id": "card0042", "merchant_id": "m00017", "label": 1, "known_at": 1767657600.0}

``label`` is 1/0 (or true/false, "true_positive"/"false_positive"); the key field and the categorical
fields that ``kind: confirmed`` features are keyed by say whom the label concerns; ``known_at`` (epoch
seconds) is when the truth became known, defaulting to the record's Kafka timestamp; the event's id (the
schema's id field), when given, lets the supervised re-ranker learn from the label.

Why every worker reads the whole topic: the label features live in each partition's state (a merchant's
risk is kept by every partition whose cards shop there), so each owned partition needs every label. The
feed is not a group member (it assigns every label partition itself); the *position* of the next label
to apply, per label partition, is part of each pipeline's state (:meth:`Pipeline.apply_labels`), saved in
the same checkpoint as the features the labels changed. After a crash the state comes back with its
positions, the feed rewinds to the smallest of them, and labels already folded in are skipped: exactly
once, with no offset commit to trust.

A label is applied to a partition once that partition's event-time clock has reached ``known_at``, in the
topic's order (a label waits for the ones before it), between batches under the driver's lock. A record
that is not such an object becomes a dead letter (``kafka-labels:{topic}/{partition}``) with its reason.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

import msgspec
import numpy as np
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, TopicPartition

from tocsin.batch import EventBatch
from tocsin.decode import DeadLetter
from tocsin.spec import KafkaSource, PipelineSpec

log = logging.getLogger(__name__)

_TRUE = {1, "1", "true", "true_positive"}  # True == 1: JSON true is in it too
_FALSE = {0, "0", "false", "false_positive"}


class LabelError(ValueError):
    """A label record tocsin cannot apply (the reason names the field)."""


def label_fields(spec: PipelineSpec) -> list[str]:
    """The record fields a label must carry: the key field, and every categorical field a ``confirmed``
    feature is keyed by."""
    fields = [spec.event_schema.key_field]
    for feature in spec.features:
        by = getattr(feature, "by", None)
        if feature.kind == "confirmed" and by not in (None, "entity", "global") and by not in fields:
            fields.append(by)
    return fields


def decode_label(raw: bytes, fields: list[str], timestamp: float | None, id_field: str | None = None) -> tuple[dict[str, str], int, float]:
    """(field values, label 0/1, known_at) of one label record, or :class:`LabelError` naming the field.
    With ``id_field`` the event's id, when the record carries it, is among the values (under that name):
    the supervised re-ranker learns from labels it can match to an event it scored.

    >>> decode_label(b'{"card_id": "c1", "merchant_id": 17, "label": true, "tx_id": "tx9"}', ["card_id", "merchant_id"], 5.0, "tx_id")
    ({'card_id': 'c1', 'merchant_id': '17', 'tx_id': 'tx9'}, 1, 5.0)
    """
    try:
        record = msgspec.json.decode(raw)
    except msgspec.DecodeError as error:
        raise LabelError(f"not JSON: {error}") from None
    if not isinstance(record, dict):
        raise LabelError("a label is one JSON object")
    verdict = record.get("label")
    if verdict in _TRUE:
        label = 1
    elif verdict in _FALSE:
        label = 0
    else:
        raise LabelError(f"label: expected 1/0, true/false, true_positive/false_positive, got {verdict!r}")
    values = {}
    for name in fields:
        value = record.get(name)
        if value is None or value == "" or isinstance(value, (dict, list, float)):
            raise LabelError(f"{name}: a label needs the {name} it concerns (a string or integer), got {value!r}")
        values[name] = str(value)
    if id_field is not None and isinstance(record.get(id_field), (str, int)) and not isinstance(record.get(id_field), bool):
        values[id_field] = str(record[id_field])
    known_at = record.get("known_at", timestamp)
    if isinstance(known_at, bool) or not isinstance(known_at, (int, float)) or not np.isfinite(known_at):
        raise LabelError(f"known_at: expected epoch seconds, got {known_at!r}")
    return values, label, float(known_at)


class LabelFeed:
    """Reads ``source.labels_topic`` and folds its labels into the pipelines of the streams it is given."""

    def __init__(self, spec: PipelineSpec, client_id: str, dead_letters: Any = None) -> None:
        source = spec.source
        assert isinstance(source, KafkaSource) and source.labels_topic
        self.spec, self.topic = spec, source.labels_topic
        self.fields = label_fields(spec)
        self.dead_letters = dead_letters  # callable(list[DeadLetter]) or None
        self.consumer = Consumer({**source.client_config(), "client.id": f"{client_id}-labels",
                                  "group.id": f"{source.group}.labels", "enable.auto.commit": False,
                                  "auto.offset.reset": "earliest"})
        #: label partition -> [(offset, values, label, known_at)] read and not yet applied everywhere
        self.pending: dict[int, list[tuple[int, dict[str, str], int, float]]] = {}
        self.partitions: list[int] = []
        self.applied = 0
        self.rejected = 0

    def source_name(self, partition: int) -> str:
        return f"kafka-labels:{self.topic}/{partition}"

    def rewind(self, pipelines: Iterable[Any]) -> None:
        """Read again from the earliest label any of ``pipelines`` still needs (after an assignment)."""
        pipelines = list(pipelines)
        try:
            metadata = self.consumer.list_topics(self.topic, timeout=10)
            self.partitions = sorted(metadata.topics[self.topic].partitions)
        except (KafkaException, KeyError) as error:
            log.warning("labels topic %s: %s", self.topic, error)
            self.partitions = []
        assignment = []
        for p in self.partitions:
            start = min((pl.labels_applied.get(self.source_name(p), 0) for pl in pipelines), default=0)
            assignment.append(TopicPartition(self.topic, p, start if start > 0 else OFFSET_BEGINNING))
        self.pending = {p: [] for p in self.partitions}
        self.consumer.assign(assignment)

    def poll(self, max_records: int = 10_000) -> int:
        """Read what has arrived (without waiting); malformed records become dead letters."""
        messages = self.consumer.consume(num_messages=max_records, timeout=0)
        bad: list[DeadLetter] = []
        for message in messages:
            if message.error():
                log.warning("labels topic: %s", message.error())
                continue
            _kind, stamp = message.timestamp()
            try:
                values, label, known_at = decode_label(message.value() or b"", self.fields, stamp / 1000.0 if stamp > 0 else None,
                                                       self.spec.event_schema.id_field)
            except LabelError as error:
                bad.append(DeadLetter(self.source_name(message.partition()), message.offset(), f"label: {error}",
                                      bytes(message.value() or b""), "malformed"))
                continue
            self.pending.setdefault(message.partition(), []).append((message.offset(), values, label, known_at))
        if bad:
            self.rejected += len(bad)
            if self.dead_letters is not None:
                self.dead_letters(bad)
        return len(messages)

    def apply(self, pipelines: Iterable[Any]) -> int:
        """Fold every due label into each pipeline (call between batches, under the driver's lock)."""
        pipelines = list(pipelines)
        applied = 0
        for partition, queue in self.pending.items():
            if not queue:
                continue
            name = self.source_name(partition)
            for pipeline in pipelines:
                clock = pipeline.admission.watermark
                start = pipeline.labels_applied.get(name, 0)
                due = []
                for offset, values, label, known_at in queue:
                    if offset < start:
                        continue
                    if not known_at <= clock:
                        break  # in topic order: a label waits for those before it
                    due.append((offset, values, label, known_at))
                if due:
                    applied += pipeline.apply_labels(self._batch(due), np.array([d[3] for d in due]), name,
                                                     np.array([d[0] for d in due], dtype=np.int64))
            done = min((pl.labels_applied.get(name, 0) for pl in pipelines), default=0)
            self.pending[partition] = [item for item in queue if item[0] >= done]
        self.applied += applied
        return applied

    def _batch(self, due: list[tuple[int, dict[str, str], int, float]]) -> EventBatch:
        key = self.spec.event_schema.key_field
        categorical = {name: np.array([d[1][name] for d in due], dtype=object) for name in self.fields if name != key}
        id_field = self.spec.event_schema.id_field
        return EventBatch(ids=np.array([d[1].get(id_field, f"label:{d[0]}") if id_field else f"label:{d[0]}" for d in due], dtype=object),
                          keys=np.array([d[1][key] for d in due], dtype=object),
                          times=np.array([d[3] for d in due], dtype=np.float64), numeric={}, categorical=categorical,
                          labels=np.array([d[2] for d in due], dtype=np.int8))

    def close(self) -> None:
        try:
            self.consumer.close()
        except (KafkaException, RuntimeError):  # pragma: no cover - closing anyway
            pass
