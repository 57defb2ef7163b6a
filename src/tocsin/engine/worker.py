"""The Kafka worker: a consumer-group loop around the driver core, one stream per owned partition.

Outputs, checkpoints and their order are the driver core's (:mod:`tocsin.engine.core`);
this loop decides only what is Kafka's:

- **Batches**: every record already fetched (up to ``fetch_max_messages``) is taken
  without waiting, split by partition, and the parts go through the core together:
  one store transaction and one producer acknowledgement per consume() call.
- **Rebalance**: on assignment a partition's checkpoint is loaded into a fresh
  pipeline and the consumer seeks to the position after it (the checkpoint, not
  the broker's committed offset, is the position); on revocation the partition
  is checkpointed before it is released (the loop is synchronous, so every
  consumed batch has been acknowledged then); a *lost* partition (the group
  evicted us) is dropped without a checkpoint, since its new owner may already
  have written a newer one.
- **Checkpoint cadence**: under load one partition is snapshotted every
  ``checkpoint.interval / partitions`` (the one waiting longest) and written in
  the background; on real idleness (no record for ``IDLE_CHECKPOINT_S``) every
  moved partition is saved; the checkpointed offset + 1 is then committed to
  Kafka (advisory, for lag tools).
- **Backpressure**: when the store, the producer or the checkpoint store fails, the
  worker pauses its partitions (so the client stops fetching), retries the same
  write with exponential back-off and resumes when it succeeds; health reports
  the component as down meanwhile. It does not poll during the retry (a poll
  could deliver a revocation while a batch is not acknowledged); the group keeps
  it as long as ``max_poll_interval_ms``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, TopicPartition

from tocsin.checkpoint import open_checkpoint_store
from tocsin.checkpoint.base import CheckpointStore
from tocsin.engine.core import DriverCore, Stream
from tocsin.engine.gc_tuning import tune_gc_for_hot_loop
from tocsin.engine.health import Health
from tocsin.engine.metrics import DriverMetrics
from tocsin.engine.pipeline import ScoredBatch
from tocsin.engine.stats import RunStats
from tocsin.kafka.consumer import PartitionBatch, consumer_config, split_by_partition
from tocsin.sinks.base import Sink
from tocsin.spec import KafkaSource, PipelineSpec
from tocsin.store.sql import Store

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Seconds without records after which a worker checkpoints (so a stopped stream is saved promptly).
IDLE_CHECKPOINT_S = 1.0
#: Seconds between consumer-lag readings (each asks the client for every owned partition's watermarks).
LAG_EVERY_S = 2.0


class KafkaWorker:
    """Consumes ``spec.source.topic`` in group ``spec.source.group`` and scores each owned partition
    with its own pipeline, through one :class:`~tocsin.engine.core.DriverCore`."""

    def __init__(
        self,
        spec: PipelineSpec,
        *,
        store: Store | None = None,
        checkpoints: CheckpointStore | None = None,
        worker_id: str = "0",
        idle_exit: float | None = None,
        consumer_overrides: dict[str, Any] | None = None,
        on_batch: Callable[[ScoredBatch, RunStats], None] | None = None,
        metrics: DriverMetrics | None = None,
    ) -> None:
        if not isinstance(spec.source, KafkaSource):
            raise ValueError(f"source.kind is {spec.source.kind!r}: a Kafka worker needs source.kind: kafka")
        self.spec = spec
        self.source: KafkaSource = spec.source
        self.settings = spec.stream
        self.worker_id = worker_id
        self.idle_exit = idle_exit
        self._ticked = 0.0
        self.health = Health(self.settings.health_path, worker=worker_id)
        if checkpoints is None:
            checkpoints = open_checkpoint_store(self.settings.checkpoint_url or Path(spec.checkpoint.dir), spec.name)
        client_id = f"tocsin-{spec.name}-{worker_id}"
        sinks: list[Sink] = []
        if any((self.source.alerts_topic, self.source.dlq_topic, self.source.scored_topic)):
            from tocsin.sinks.kafka import KafkaTopicSinks

            sinks.append(KafkaTopicSinks(self.source, spec.name, client_id, ack_timeout=self.settings.retry_max))
        if self.settings.cache_url:
            from tocsin.cache.redis import EntityCache
            from tocsin.sinks.cache import CacheSink

            sinks.append(CacheSink(EntityCache(self.settings.cache_url), spec.name, self._cache_health))
        self.core = DriverCore(spec, driver="worker", store=store, checkpoints=checkpoints, sinks=sinks,
                               metrics=metrics or DriverMetrics(spec.name, "worker", worker=worker_id),
                               health=self.health, retry=self._retry, commit=self._commit, worker=worker_id)
        if on_batch is not None:
            self.core.listeners.append(on_batch)
        #: owned partitions' streams, by partition number
        self.streams: dict[int, Stream] = {}
        self._stop = threading.Event()
        self._last_checkpoint = time.monotonic()
        self._last_lag = 0.0
        self.consumer = Consumer(consumer_config(self.source, **{"client.id": client_id, **(consumer_overrides or {})}))
        #: labels from source.labels_topic into every owned partition's label features (exactly once each)
        self.labels = None
        if self.source.labels_topic:
            from tocsin.kafka.labels import LabelFeed

            self.labels = LabelFeed(spec, client_id, dead_letters=self._label_dead_letters)

    @property
    def stats(self) -> RunStats:
        return self.core.stats

    @property
    def metrics(self) -> DriverMetrics:
        return self.core.metrics

    # --- control ----------------------------------------------------------------

    def stop(self) -> None:
        """Finish the current batch, checkpoint every partition and leave the group."""
        self._stop.set()

    def partition_name(self, partition: int) -> str:
        return f"{self.source.topic}/{partition}"

    # --- retry ------------------------------------------------------------------

    def _retry(self, component: str, action: Callable[[], T]) -> T:
        """``action()`` until it succeeds, pausing consumption while it fails (nothing is dropped)."""
        delay = self.settings.retry_initial
        paused = False
        while True:
            try:
                result = action()
            except Exception as error:  # noqa: BLE001 - any failure of a sink means "retry"
                self.health.down(component, error)
                if not paused and self.streams:
                    self._pause(True)
                    paused = True
                time.sleep(delay)
                delay = min(delay * 2, self.settings.retry_max)
                continue
            self.health.up(component)
            if paused:
                self._pause(False)
            return result

    def _cache_health(self, component: str, error: BaseException | None) -> None:
        if error is None:
            self.health.up(component)
        else:
            self.health.down(component, error)

    def _pause(self, pause: bool) -> None:
        partitions = [TopicPartition(self.source.topic, p) for p in self.streams]
        try:
            (self.consumer.pause if pause else self.consumer.resume)(partitions)
        except KafkaException as error:  # partitions revoked meanwhile
            log.debug("pause/resume: %s", error)
        self.health.paused = pause

    # --- assignment -------------------------------------------------------------

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        for tp in partitions:
            stream = self.core.open_stream(self.partition_name(tp.partition), f"kafka:{self.partition_name(tp.partition)}",
                                           key=tp.partition)
            self.streams[tp.partition] = stream
            stream.replay_until = self._log_end(consumer, tp) - 1  # a previous owner read no further
            tp.offset = stream.position + 1 if stream.position >= 0 else OFFSET_BEGINNING
            log.info("partition %s: resuming at offset %d", stream.name, stream.position + 1)
        self._owned_changed("assigned", [tp.partition for tp in partitions])
        if self.labels is not None:
            self.labels.rewind(s.pipeline for s in self.streams.values())
        log.info("worker %s assigned %s", self.worker_id, [(tp.partition, tp.offset) for tp in partitions])
        consumer.assign(partitions)

    def _log_end(self, consumer: Consumer, tp: TopicPartition) -> int:
        """The partition's end offset now (0 when the broker does not answer: no replay guard then)."""
        try:
            return int(consumer.get_watermark_offsets(TopicPartition(tp.topic, tp.partition), timeout=5)[1])
        except KafkaException as error:
            log.warning("partition %d: end offset unknown (%s): a promotion may switch inside a replay", tp.partition, error)
            return 0

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        revoked = [tp.partition for tp in partitions if tp.partition in self.streams]
        for p in revoked:
            self.core.close_stream(self.streams.pop(p), save=True)
        self._owned_changed("revoked", revoked)
        log.info("worker %s revoked %s", self.worker_id, revoked)
        consumer.unassign()

    def _on_lost(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        lost = [tp.partition for tp in partitions if tp.partition in self.streams]
        for p in lost:
            self.core.close_stream(self.streams.pop(p), save=False)
        self._owned_changed("lost", lost)
        log.warning("worker %s lost %s without a checkpoint (evicted from the group)", self.worker_id, lost)
        consumer.unassign()

    def _owned_changed(self, kind: str, partitions: list[int]) -> None:
        self.health.partitions = sorted(self.streams)
        self.metrics.rebalanced(kind, partitions)

    # --- the loop ---------------------------------------------------------------

    def run(self) -> RunStats:
        """Consume until :meth:`stop` (or ``idle_exit`` seconds without records); returns the stats."""
        self.consumer.subscribe([self.source.topic], on_assign=self._on_assign, on_revoke=self._on_revoke,
                                on_lost=self._on_lost)
        batch_size, max_wait = self.source.fetch_max_messages, self.spec.runner.max_wait
        idle_since = time.monotonic()
        tune_gc_for_hot_loop()
        ahead: tuple[list[PartitionBatch], float] | None = None  # the next poll, read while this one is processed
        try:
            while not self._stop.is_set():
                if ahead is None:
                    received = time.monotonic()
                    messages = self._next_messages(batch_size, max_wait)
                    polled = split_by_partition(messages) if messages else []
                else:
                    (polled, received), ahead = ahead, None
                if sum(map(len, polled)) >= batch_size:
                    ahead = self._read_ahead(batch_size)
                # after the read ahead: a rebalance inside it may have taken partitions away
                parts = [part for part in polled if part.partition in self.streams]
                if parts or not self.streams:
                    if parts:
                        self._process(parts, received)
                    idle_since = time.monotonic()
                self._tick_idle(parts)
                if self.labels is not None and self.streams:
                    self._apply_labels()
                elif self.idle_exit is not None and time.monotonic() - idle_since >= self.idle_exit:
                    break
                dirty = any(s.dirty for s in self.streams.values())
                # An empty consume() between two fetches is not idleness: checkpointing on every one would
                # write the whole state many times a second under steady load. Quiet for IDLE_CHECKPOINT_S is.
                quiet = not parts and time.monotonic() - idle_since >= IDLE_CHECKPOINT_S
                if dirty and quiet:
                    self._checkpoint(list(self.streams.values()))
                elif dirty:
                    self._periodic_checkpoint()
                self.core.settle_checkpoints(list(self.streams.values()))
                self._report_lag()
                self.health.write()
        finally:
            self._checkpoint(list(self.streams.values()))
            self.consumer.close()  # leaves the group: the revocation callback finds nothing left to save
            if self.labels is not None:
                self.labels.close()
            self.core.close()
            self.health.write(force=True)
        return self.stats

    def _read_ahead(self, batch_size: int) -> tuple[list[PartitionBatch], float] | None:
        """After a full poll the worker is behind and the client holds more: take what is fetched (no waiting)
        and start decoding its first partition's batch on the second core, while this poll is processed
        (:meth:`tocsin.engine.pipeline.Pipeline.decode_ahead`; the driver core starts each next one). What is
        read ahead is not processed yet, so a stop or crash loses nothing: the checkpoint is behind it."""
        received = time.monotonic()
        parts = split_by_partition(self.consumer.consume(num_messages=batch_size, timeout=0))
        if not parts:  # nothing fetched, or only errors (logged) and partition ends
            return None
        stream = self.streams.get(parts[0].partition)
        if stream is not None:
            stream.pipeline.decode_ahead(parts[0], stream.source)
        return parts, received

    def _next_messages(self, batch_size: int, max_wait: float) -> list[Any]:
        """Every record already fetched (up to ``batch_size``) without waiting; only when none is, wait up
        to ``max_wait`` for the first.

        ``consume(n, timeout)`` alone holds the records it has until ``n`` arrive or the timeout ends, so
        under a steady input below capacity every event would wait the whole ``max_wait``. Taking what is
        there lets the batch size follow the load: small batches and low latency when the input is slow,
        full batches when the worker is behind (the client keeps ``prefetch_messages`` fetched ahead)."""
        messages = self.consumer.consume(num_messages=batch_size, timeout=0)
        if messages:
            return messages
        first = self.consumer.consume(num_messages=1, timeout=max_wait)
        if not first:
            return first
        return first + self.consumer.consume(num_messages=batch_size - 1, timeout=0) if batch_size > 1 else first

    def _process(self, parts: list[PartitionBatch], received: float) -> None:
        work = []
        for part in parts:
            stream = self.streams[part.partition]
            fresh = part.positions > stream.position
            if not fresh.all():  # a re-delivery after a seek: never fold an event in twice
                if not fresh.any():
                    continue
                part = part.take(np.flatnonzero(fresh))
            work.append((stream, part))
        if work:
            self.core.process(work, path="kafka", received=received)

    def _tick_idle(self, parts: list[PartitionBatch]) -> None:
        """About once a second, owned partitions that brought nothing get what fell due (``silence.enabled``: a
        partition whose only host died still reports it; ``quality``: a table's last load is scored)."""
        if not (self.spec.silence.enabled or self.spec.quality is not None) or time.monotonic() - self._ticked < 1.0:
            return
        self._ticked = time.monotonic()
        busy = {part.partition for part in parts}
        self.core.tick([s for p, s in self.streams.items() if p not in busy], path="kafka")

    def _apply_labels(self) -> None:
        """Read the labels topic and fold due labels into every owned partition, between batches: the
        positions they move are saved with the state they change (see :mod:`tocsin.kafka.labels`)."""
        self.labels.poll()
        with self.core.lock:
            if self.core.unacknowledged:
                return  # a batch is still inside (a sink failed): its stream takes no label until it is out
            applied = self.labels.apply(s.pipeline for s in self.streams.values())
        if applied:
            self.metrics.labels_applied(applied)

    def _label_dead_letters(self, letters: list) -> None:
        self._retry("store", lambda: self.core.store.write_dead_letters(self.spec.name, [d.as_row() for d in letters]))
        self.metrics.dead_letters_counted(letters)

    # --- checkpoints ------------------------------------------------------------

    def _periodic_checkpoint(self) -> None:
        """Under load, snapshot one partition every ``interval / partitions`` seconds, the one waiting
        longest, so each partition is saved once per interval and the in-line snapshot pauses (~10-25 ms
        each for 100k cards) are spread over the interval instead of stacking up at its end."""
        if time.monotonic() - self._last_checkpoint < self.spec.checkpoint.interval / max(1, len(self.streams)):
            return
        waiting = [s for s in self.streams.values() if s.pending is None and s.dirty]
        if waiting:
            self._checkpoint([min(waiting, key=lambda s: s.snapshot_at)], background=True)

    def _checkpoint(self, streams: list[Stream], background: bool = False) -> None:
        self.core.checkpoint(streams, background=background)
        self._last_checkpoint = time.monotonic()

    def _commit(self, streams: list[Stream]) -> None:
        """Commit checkpointed positions to Kafka: advisory, for lag tools; the checkpoint is the position."""
        offsets = [TopicPartition(self.source.topic, s.key, s.checkpointed + 1) for s in streams]
        try:
            self.consumer.commit(offsets=offsets, asynchronous=True)
        except KafkaException as error:
            log.info("offset commit failed (advisory): %s", error)

    def _report_lag(self) -> None:
        """Consumer lag per owned partition (high watermark - next offset), from the client's cached
        watermarks, every ``LAG_EVERY_S``. (tansu's high watermark is approximate; real Kafka's is exact.)"""
        now = time.monotonic()
        if now - self._last_lag < LAG_EVERY_S or not self.streams:
            return
        self._last_lag = now
        for partition, stream in self.streams.items():
            try:
                _low, high = self.consumer.get_watermark_offsets(TopicPartition(self.source.topic, partition), cached=True)
            except KafkaException:
                continue
            if high is not None and high >= 0:
                self.metrics.set_consumer_lag(partition, max(0, high - (stream.position + 1)))
