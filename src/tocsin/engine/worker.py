"""The Kafka worker: one pipeline per assigned partition, checkpoints, backpressure.

Ordering invariant, per partition (see :mod:`tocsin.checkpoint.base`)
--------------------------------------------------------------------
1. the store and the producer acknowledged every output of the events up to
   offset X (a batch is retried, consumption paused, until they do);
2. (state at X, X) is saved atomically in the checkpoint store, with the
   output-topic offsets below which no later record can land;
3. X + 1 is committed to Kafka: advisory, for lag tools; the position a
   partition resumes from is always the checkpoint's, so state and position
   never disagree.

Break 1→2 and a crash loses outputs (the state moved past events whose
alerts never landed); skip 2 and a crash replays, which the idempotent sinks
absorb. That is why every failure path here ends in "replay from the last
checkpoint": the store ignores rows whose key it has, and the output topics are
read back on takeover so replayed alerts are not produced twice
(:mod:`tocsin.kafka.sinks`).

Alerts: each partition has its own :class:`~tocsin.engine.outputs.OutputWriter`,
whose alert manager groups that partition's anomalies into alerts exactly as the
embedded runner does (entity and pattern within an event-time window,
suppression, severity rules, budget, routes); its state is saved in the
partition's checkpoint beside the pipeline's (``alerting/…``), so a replay
regroups as the first run did. One consume() call writes every partition's
anomalies, dead letters, scored events, alert changes and pending deliveries in
one store transaction; a :class:`~tocsin.alerting.dispatcher.Dispatcher` thread
delivers the routed ones. The alerts topic gets one record per alert change
(opened, updated, resolved; see ``docs/streaming.md``).

Rebalance: on assignment a partition's checkpoint is loaded into a fresh
:class:`Pipeline` and the consumer seeks to the offset after it; on revocation
the partition is checkpointed before it is released (the loop is synchronous,
so at that moment every consumed batch has been acknowledged); a *lost*
partition (the group evicted us) is dropped without a checkpoint, since its
new owner may already have written a newer one.

Backpressure: when the store, the producer or the checkpoint store fails, the
worker pauses its partitions (so the client stops fetching), retries the same
write with exponential back-off and resumes when it succeeds; health reports
the component as down meanwhile. It does not poll during the retry (a poll
could deliver a revocation while a batch is not acknowledged); the group keeps
it as long as ``max_poll_interval_ms``.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import msgspec
import numpy as np
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, TopicPartition

from tocsin.checkpoint.base import CheckpointStore
from tocsin.engine.gc_tuning import tune_gc_for_hot_loop
from tocsin.engine.outputs import BatchOutputs, OutputWriter, scored_event_rows, start_dispatcher, write_outputs
from tocsin.engine.pipeline import Pipeline, ScoredBatch
from tocsin.engine.runner import RunStats
from tocsin.checkpoint import open_checkpoint_store
from tocsin.kafka.consumer import PartitionBatch, consumer_config, split_by_partition
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
from tocsin.spec import KafkaSource, PipelineSpec
from tocsin.store.sql import Store

log = logging.getLogger(__name__)

T = TypeVar("T")

_encode = msgspec.json.Encoder(enc_hook=lambda v: v.item() if isinstance(v, np.generic) else str(v)).encode


#: Seconds without records after which a worker checkpoints (so a stopped stream is saved promptly).
IDLE_CHECKPOINT_S = 1.0


@dataclass
class PartitionState:
    """What a worker holds for one owned partition."""

    partition: int
    name: str
    pipeline: Pipeline
    #: groups the partition's anomalies into alerts; its state is checkpointed with the pipeline's
    outputs: OutputWriter
    #: last offset folded into the pipeline's state (-1: none)
    offset: int = -1
    checkpointed: int = -1
    #: per output topic: an offset below which no record of a later batch can land
    sink_floor: dict[str, int] = field(default_factory=dict)
    #: per output topic: keys already published past the checkpoint, not to send again
    published: dict[str, set[bytes]] = field(default_factory=dict)
    #: per alert: the highest count among its changes already on the alerts topic past the checkpoint
    published_counts: dict[str, int] = field(default_factory=dict)
    #: the replay suppression ends after this input offset
    replay_until: int = -1
    #: a checkpoint being written in the background: (offset, snapshot, meta, future)
    pending: tuple[int, dict[str, np.ndarray], dict[str, Any], Future] | None = None
    #: monotonic time of the latest snapshot (periodic checkpoints take the partition waiting longest)
    snapshot_at: float = 0.0


@dataclass
class ComponentHealth:
    ok: bool = True
    error: str | None = None
    since: float | None = None
    failures: int = 0


class Health:
    """The worker's health: ``ok`` or ``degraded`` with the component that is down."""

    COMPONENTS = ("kafka", "store", "checkpoint", "cache")

    def __init__(self, path: Path | None = None, worker: str = "") -> None:
        self.path = path
        self.worker = worker
        self.components = {name: ComponentHealth() for name in self.COMPONENTS}
        self.paused = False
        self.partitions: list[int] = []
        self.events = 0
        self._written = 0.0

    def down(self, component: str, error: BaseException | str) -> None:
        state = self.components[component]
        if state.ok:
            log.warning("%s is down: %s; pausing and retrying", component, error)
            state.ok, state.since = False, time.time()
        state.error, state.failures = str(error)[:500], state.failures + 1
        self.write(force=True)

    def up(self, component: str) -> None:
        state = self.components[component]
        if not state.ok:
            log.warning("%s is back after %.1f s", component, time.time() - (state.since or time.time()))
            self.components[component] = ComponentHealth()
            self.write(force=True)

    @property
    def status(self) -> str:
        return "ok" if all(c.ok for c in self.components.values()) else "degraded"

    def as_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "worker": self.worker,
            "pid": os.getpid(),
            "paused": self.paused,
            "degraded": [name for name, c in self.components.items() if not c.ok],
            "components": {name: {"ok": c.ok, "error": c.error, "since": c.since, "failures": c.failures}
                           for name, c in self.components.items()},
            "partitions": list(self.partitions),
            "events": self.events,
            "updated_at": time.time(),
        }

    def write(self, force: bool = False) -> None:
        """Write the health JSON atomically (at most twice a second unless forced)."""
        if self.path is None or (not force and time.monotonic() - self._written < 0.5):
            return
        self._written = time.monotonic()
        tmp = self.path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(self.as_dict()))
        os.replace(tmp, self.path)


class KafkaWorker:
    """Consumes ``source.topic`` in group ``source.group`` and scores each owned partition with its own pipeline."""

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
    ) -> None:
        if not isinstance(spec.source, KafkaSource):
            raise ValueError(f"source.kind is {spec.source.kind!r}: a Kafka worker needs source.kind: kafka")
        self.spec = spec
        self.source: KafkaSource = spec.source
        self.settings = spec.stream
        self.worker_id = worker_id
        self.idle_exit = idle_exit
        self.on_batch = on_batch
        self.store = store if store is not None else Store(spec.store.url)
        if checkpoints is None:
            checkpoints = open_checkpoint_store(self.settings.checkpoint_url or str(spec.checkpoint.dir), spec.name)
        self.checkpoints = checkpoints
        self.cache = None
        if self.settings.cache_url:
            from tocsin.cache.redis import EntityCache

            self.cache = EntityCache(self.settings.cache_url)
        self.health = Health(self.settings.health_path, worker=worker_id)
        self.stats = RunStats()
        self.states: dict[int, PartitionState] = {}
        #: delivers the outbox while :meth:`run` runs (when a route names a channel beyond the store)
        self.dispatcher = None
        self._stop = threading.Event()
        self._last_checkpoint = time.monotonic()
        # One writer thread: periodic checkpoints are packed and written while the next batches are scored.
        self._checkpoint_writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tocsin-checkpoint",
                                                     initializer=_yield_cpu_to_scoring)
        client = self.source.client_config()
        self.producer = KafkaProducerHandle(client, **{"client.id": f"tocsin-{spec.name}-{worker_id}"})
        self.sinks: dict[str, TopicSink] = {}
        for kind, topic in (("alerts", self.source.alerts_topic), ("dlq", self.source.dlq_topic), ("scored", self.source.scored_topic)):
            if topic:
                self.sinks[kind] = TopicSink(self.producer, topic)
        self.consumer = Consumer(consumer_config(self.source, **{"client.id": f"tocsin-{spec.name}-{worker_id}", **(consumer_overrides or {})}))

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
                if not paused and self.states:
                    self._pause(True)
                    paused = True
                if self._stop.is_set() and component == "cache":
                    raise
                time.sleep(delay)
                delay = min(delay * 2, self.settings.retry_max)
                continue
            self.health.up(component)
            if paused:
                self._pause(False)
            return result

    def _pause(self, pause: bool) -> None:
        partitions = [TopicPartition(self.source.topic, p) for p in self.states]
        try:
            (self.consumer.pause if pause else self.consumer.resume)(partitions)
        except KafkaException as error:  # partitions revoked meanwhile
            log.debug("pause/resume: %s", error)
        self.health.paused = pause

    # --- assignment -------------------------------------------------------------

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        for tp in partitions:
            state = self._restore(tp.partition)
            self.states[tp.partition] = state
            tp.offset = state.offset + 1 if state.offset >= 0 else OFFSET_BEGINNING
        self.health.partitions = sorted(self.states)
        log.info("worker %s assigned %s", self.worker_id, [(tp.partition, tp.offset) for tp in partitions])
        consumer.assign(partitions)

    def _restore(self, partition: int) -> PartitionState:
        name = self.partition_name(partition)
        pipeline = Pipeline(self.spec)
        state = PartitionState(partition, name, pipeline, OutputWriter(self.spec, self.store, dispatch=False))
        checkpoint = self._retry("checkpoint", lambda: self.checkpoints.load(name))
        if checkpoint is not None:
            pipeline.load_state_dict(checkpoint.state)
            state.outputs.load_state_dict(checkpoint.state)
            state.offset = state.checkpointed = checkpoint.offset
            state.sink_floor = {k: int(v) for k, v in checkpoint.meta.get("sink_floor", {}).items()}
        for kind, sink in self.sinks.items():
            if kind == "scored":
                continue
            start = state.sink_floor.get(sink.topic, 0)
            keys, highest = self._retry("kafka", lambda: sink.published_keys(partition, start))
            if keys:
                state.published[sink.topic] = keys
                state.replay_until = max(state.replay_until, highest)
                if kind == "alerts":
                    state.published_counts = published_alert_counts(keys)
        log.info("partition %s: resumed at offset %d; %d output record(s) already published past it",
                 name, state.offset + 1, sum(len(k) for k in state.published.values()))
        return state

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        revoked = [tp.partition for tp in partitions if tp.partition in self.states]
        self._checkpoint(revoked)
        for p in revoked:
            del self.states[p]
        self.health.partitions = sorted(self.states)
        log.info("worker %s revoked %s", self.worker_id, revoked)
        consumer.unassign()

    def _on_lost(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        for tp in partitions:
            state = self.states.pop(tp.partition, None)
            if state is not None and state.pending is not None:
                state.pending[3].cancel()  # not yet started: its new owner may already have saved a newer one
        self.health.partitions = sorted(self.states)
        log.warning("worker %s lost %s without a checkpoint (evicted from the group)", self.worker_id,
                    [tp.partition for tp in partitions])
        consumer.unassign()

    # --- the loop ---------------------------------------------------------------

    def run(self) -> RunStats:
        """Consume until :meth:`stop` (or ``idle_exit`` seconds without records); returns the stats."""
        self.consumer.subscribe([self.source.topic], on_assign=self._on_assign, on_revoke=self._on_revoke,
                                on_lost=self._on_lost)
        batch_size, max_wait = self.source.fetch_max_messages, self.spec.runner.max_wait
        idle_since = time.monotonic()
        tune_gc_for_hot_loop()
        try:
            self.dispatcher = start_dispatcher(self.store, self.spec.alerting, self.spec.name)
            while not self._stop.is_set():
                messages = self._next_messages(batch_size, max_wait)
                parts = split_by_partition(messages) if messages else []
                parts = [part for part in parts if part.partition in self.states]
                if parts or not self.states:
                    if parts:
                        self._process(parts)
                    idle_since = time.monotonic()
                elif self.idle_exit is not None and time.monotonic() - idle_since >= self.idle_exit:
                    break
                dirty = any(s.offset != s.checkpointed for s in self.states.values())
                # An empty consume() between two fetches is not idleness: checkpointing on every one would
                # write the whole state many times a second under steady load. Quiet for IDLE_CHECKPOINT_S is.
                quiet = not parts and time.monotonic() - idle_since >= IDLE_CHECKPOINT_S
                if dirty and quiet:
                    self._checkpoint(list(self.states))
                elif dirty:
                    self._periodic_checkpoint()
                self._finish_background_checkpoints()
                self.health.write()
        finally:
            self._checkpoint(list(self.states))
            self._checkpoint_writer.shutdown(wait=True)
            self.stats.finished = time.monotonic()
            self.consumer.close()  # leaves the group: the revocation callback finds nothing left to save
            self.producer.close()
            if self.dispatcher is not None:
                self.dispatcher.stop()
            self.health.write(force=True)
        return self.stats

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

    def _process(self, parts: list[PartitionBatch]) -> None:
        batches: list[BatchOutputs] = []
        processed: list[tuple[PartitionState, ScoredBatch]] = []
        for part in parts:
            state = self.states[part.partition]
            fresh = part.batch.positions > state.offset
            if not fresh.all():  # a re-delivery after a seek: never fold an event in twice
                if not fresh.any():
                    continue
                keep = np.flatnonzero(fresh)
                part = PartitionBatch(part.partition, type(part.batch)(
                    positions=part.batch.positions[keep], next_position=part.batch.next_position,
                    lines=[part.batch.lines[i] for i in keep.tolist()]), [part.messages[i] for i in keep.tolist()])
            scored = state.pipeline.process_raw(part.batch, f"kafka:{state.name}")
            outputs = state.outputs.prepare(scored)
            batches.append(outputs)
            self._send(state, part, scored, outputs)
            state.offset = int(part.batch.positions[-1])
            if state.offset > state.replay_until and state.published:
                state.published, state.published_counts = {}, {}
            processed.append((state, scored))
        if not processed:
            return
        if any(batches):
            self._retry("store", lambda: self._write(batches))
        if self.sinks:
            self._retry("kafka", lambda: self.producer.acknowledge(timeout=self.settings.retry_max))
        if self.dispatcher is not None and any(b.changes.deliveries for b in batches):
            self.dispatcher.wake()
        if self.cache is not None:
            self._update_cache([scored for _, scored in processed])
        for _, scored in processed:
            self.stats.add(scored)
            if self.on_batch is not None:
                self.on_batch(scored, self.stats)
        self.health.events = self.stats.events

    def _write(self, batches: list[BatchOutputs]) -> None:
        """Every partition's outputs of one consume() call in one store transaction."""
        with self.store.engine.begin() as conn:
            write_outputs(conn, self.store, self.spec.name, self.spec.alerting, batches)

    def _send(self, state: PartitionState, part: PartitionBatch, scored: ScoredBatch, outputs: BatchOutputs) -> None:
        """Hand the partition's outputs to the producer (acknowledged later, for the whole consume() call)."""
        p = str(state.partition).encode()
        alerts_sink, dlq_sink, scored_sink = self.sinks.get("alerts"), self.sinks.get("dlq"), self.sinks.get("scored")
        if alerts_sink is not None and outputs.changes.log:
            self._send_alert_changes(alerts_sink, state, part, scored, outputs)
        dead = outputs.dead_letters
        if dlq_sink is not None and dead:
            skip = state.published.get(dlq_sink.topic, ())
            for row in dead:
                key = f"{state.name}/{row['position']}".encode()
                if key in skip:
                    continue
                dlq_sink.send(state.partition, key, row["raw"], [
                    (PARTITION_HEADER, p), (OFFSET_HEADER, str(row["position"]).encode()),
                    (REASON_HEADER, row["reason"].encode()), (SOURCE_HEADER, row["source"].encode())])
        if scored_sink is not None:
            rows = outputs.scored_events or scored_event_rows(scored)  # the store's rows, when it keeps them too
            positions = scored.events.positions[np.flatnonzero(scored.scored)].tolist() if rows else []
            for row, position in zip(rows, positions):
                scored_sink.send(state.partition, row["event_id"].encode(), _encode(row),
                                 [(PARTITION_HEADER, p), (OFFSET_HEADER, str(position).encode())])

    def _send_alert_changes(self, sink: TopicSink, state: PartitionState, part: PartitionBatch, scored: ScoredBatch,
                            outputs: BatchOutputs) -> None:
        """One record per alert change: the alert as of the anomaly that changed it (docs/streaming.md).

        While replaying past a checkpoint, a change is skipped when the topic already holds a change
        of the same alert at the same or a higher count (or its resolution): the replay may cut the
        stream differently, and counts on the topic must only grow."""
        log = outputs.changes.log
        p = str(state.partition).encode()
        caused = [change.anomaly for change in log if change.anomaly is not None]
        offsets = scored.events.positions[scored.anomaly_rows[caused]].tolist() if caused else []
        stamps = iter(part.timestamps_ms(np.asarray(offsets, dtype=np.int64)) if caused else [])
        offsets_of = iter(offsets)
        published = state.published.get(sink.topic, ())
        counts = state.published_counts
        batch_end = int(part.batch.positions[-1])
        for change in log:
            alert, detail = change.alert, change.detail
            alert_key, kind = alert["alert_key"], change.kind
            if change.anomaly is None:  # resolved: no anomaly caused it; the watermark passed within this batch
                offset, stamp = batch_end, None
                key = alert_change_key(alert_key, None)
                if key in published:
                    continue
            else:
                offset, stamp = next(offsets_of), next(stamps)
                key = alert_change_key(alert_key, alert["count"])
                if counts.get(alert_key, 0) >= alert["count"]:
                    continue
                if kind == "opened" and alert_key in counts:
                    kind = "updated"  # its opening is on the topic already, at a lower count
            value = _encode({
                "change": kind, "alert_key": alert_key, "pipeline": self.spec.name, "entity": alert["entity"],
                "pattern": detail["pattern"], "severity": alert["severity"], "status": alert["status"],
                "count": alert["count"], "score": alert["score"], "score_100": round(alert["score"] * 100.0, 2),
                "first_event_id": alert["first_event_id"], "event_id": change.event_id,
                "window_start": detail["window_start"], "window_end": detail["window_end"],
                "last_event_time": detail["last_event_time"], "suppressed": detail["suppressed"],
                "budget_cutoff": detail["budget_cutoff"], "rule": detail["rule"], "channels": detail["channels"],
                "explanation": alert["explanation"], "attributes": detail["attributes"],
                "partition": state.partition, "offset": offset,
            })
            headers = [(PARTITION_HEADER, p), (OFFSET_HEADER, str(offset).encode())]
            if stamp is not None:
                headers.append((SOURCE_TS_HEADER, str(stamp).encode()))
            sink.send(state.partition, key, value, headers)

    def _update_cache(self, batches: list[ScoredBatch]) -> None:
        try:
            self.cache.update(self.spec.name, batches)
            self.health.up("cache")
        except Exception as error:  # noqa: BLE001 - the cache is a view: log, report, go on
            self.health.down("cache", error)

    # --- checkpoints ------------------------------------------------------------

    def _periodic_checkpoint(self) -> None:
        """Under load, snapshot one partition every ``interval / partitions`` seconds, the one waiting
        longest, so each partition is saved once per interval and the in-line snapshot pauses (~10-25 ms
        each for 100k cards) are spread over the interval instead of stacking up at its end."""
        if time.monotonic() - self._last_checkpoint < self.spec.checkpoint.interval / max(1, len(self.states)):
            return
        waiting = [s for s in self.states.values() if s.pending is None and s.offset != s.checkpointed and s.offset >= 0]
        if waiting:
            self._checkpoint([min(waiting, key=lambda s: s.snapshot_at).partition], background=True)

    def _checkpoint(self, partitions: list[int], background: bool = False) -> None:
        """Save (state, offset) of ``partitions`` that moved, then commit their offsets to Kafka.

        Called only between batches, when the sinks have acknowledged every output so far, so the
        snapshot taken here is a consistent (state, offset) pair. With ``background`` the snapshot is
        packed and written by the writer thread while scoring goes on (a 57 MB state took ~125 ms to
        write, a stall every interval otherwise); its offset is committed once the write is durable.
        Otherwise (revocation, idle, shutdown) this waits for any write in flight and saves in line.
        """
        committed = []
        for p in partitions:
            state = self.states.get(p)
            if state is None:
                continue
            if state.pending is not None:
                if background:
                    continue  # one write per partition at a time; the next interval takes the newer state
                self._finish_background_checkpoint(state, wait=True)
            if state.offset == state.checkpointed or state.offset < 0:
                continue
            for sink in self.sinks.values():
                acked = sink.acked_offset(p)
                if acked is not None:
                    state.sink_floor[sink.topic] = max(state.sink_floor.get(sink.topic, 0), acked + 1)
            meta = {"pipeline": self.spec.name, "worker": self.worker_id, "pid": os.getpid(),
                    "sink_floor": dict(state.sink_floor), "events_seen": state.pipeline.events_seen,
                    "alerts_open": state.outputs.alerts.open_alerts}
            snapshot = state.pipeline.state_dict()  # copies (or views of append-only data): later batches cannot change it
            state.snapshot_at = time.monotonic()
            snapshot.update(state.outputs.state_dict())  # a fresh JSON string array, also a copy
            if background:
                future = self._checkpoint_writer.submit(self.checkpoints.save, state.name, snapshot, state.offset, meta=meta)
                state.pending = (state.offset, snapshot, meta, future)
                continue
            self._save(state, state.offset, snapshot, meta)
            committed.append(TopicPartition(self.source.topic, p, state.offset + 1))
        self._last_checkpoint = time.monotonic()
        self._commit(committed)

    def _save(self, state: PartitionState, offset: int, snapshot: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
        self._retry("checkpoint", lambda: self.checkpoints.save(state.name, snapshot, offset, meta=meta))
        state.checkpointed = offset

    def _finish_background_checkpoint(self, state: PartitionState, wait: bool) -> bool:
        """Settle ``state``'s write in flight if it is done (or ``wait``); a failed one is retried in line,
        with consumption paused, like any checkpoint failure. True when it settled."""
        offset, snapshot, meta, future = state.pending
        if not wait and not future.done():
            return False
        state.pending = None
        try:
            future.result()
            state.checkpointed = offset
            self.health.up("checkpoint")
        except Exception as error:  # noqa: BLE001 - the same retry as a failed in-line save
            self.health.down("checkpoint", error)
            self._save(state, offset, snapshot, meta)
        return True

    def _finish_background_checkpoints(self) -> None:
        done = []
        for state in self.states.values():
            if state.pending is not None and self._finish_background_checkpoint(state, wait=False):
                done.append(TopicPartition(self.source.topic, state.partition, state.checkpointed + 1))
        self._commit(done)

    def _commit(self, offsets: list[TopicPartition]) -> None:
        """Commit checkpointed positions to Kafka: advisory, for lag tools; the checkpoint is the position."""
        if offsets:
            try:
                self.consumer.commit(offsets=offsets, asynchronous=True)
            except KafkaException as error:
                log.info("offset commit failed (advisory): %s", error)


def _yield_cpu_to_scoring() -> None:
    """Run the calling (checkpoint writer) thread at a lower CPU priority, where the OS allows it:
    when the cores are busy, writing a checkpoint should wait, not the next batch's events."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)  # Linux: per thread
    except (AttributeError, OSError):  # pragma: no cover - other platforms, or not permitted
        pass


# --- processes --------------------------------------------------------------------


def worker_main(spec_data: dict[str, Any], worker_id: str, idle_exit: float | None = None,
                consumer_overrides: dict[str, Any] | None = None) -> None:
    """Entry point of one worker process (picklable arguments only); SIGTERM stops it cleanly."""
    from tocsin.spec import parse_spec

    logging.basicConfig(level=os.environ.get("TOCSIN_LOG_LEVEL", "WARNING"),
                        format=f"%(asctime)s worker {worker_id} %(levelname)s %(name)s: %(message)s")
    spec = parse_spec(spec_data)
    worker = KafkaWorker(spec, worker_id=worker_id, idle_exit=idle_exit, consumer_overrides=consumer_overrides)
    signal.signal(signal.SIGTERM, lambda *_: worker.stop())
    signal.signal(signal.SIGINT, lambda *_: worker.stop())
    stats = worker.run()
    print(json.dumps({"worker": worker_id, **stats.summary()}), flush=True)


def main(argv: list[str] | None = None) -> None:
    """``python -m tocsin.engine.worker SPEC.json`` where the JSON file holds
    ``{"spec": …, "worker_id": …, "idle_exit": …}`` (used by tests and the benchmark)."""
    import sys

    args = sys.argv[1:] if argv is None else argv
    config = json.loads(Path(args[0]).read_text())
    worker_main(config["spec"], str(config.get("worker_id", "0")), config.get("idle_exit"), config.get("consumer_overrides"))


if __name__ == "__main__":
    main()
