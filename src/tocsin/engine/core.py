"""The driver core: the one path from a batch of input to acknowledged outputs and a checkpoint.

Every driver — the embedded runner (a simulator or a file), the Kafka worker
(one stream per owned partition) and the HTTP service (its journal of accepted
requests) — is a thin loop around :class:`DriverCore`. This module is the only
place that knows the order below; the drivers only decide *when* (batch
boundaries, checkpoint cadence, rebalances).

The invariant, per stream (see :mod:`tocsin.checkpoint.base` for the store side)
-------------------------------------------------------------------------------
1. **Process.** The pipeline folds the batch into the stream's state (features,
   detector, calibration) and the alert grouping folds its anomalies into the
   stream's alert state. The stream is now *inside a batch*: its state is ahead
   of what has landed anywhere.
2. **Every sink acknowledges.** The batch's outputs go to every sink (the store,
   the Kafka topics, the cache) and the core waits until each acknowledged them
   (:meth:`~tocsin.sinks.base.Sink.flush`), retrying through the driver's retry policy.
3. **The position moves.** Only then does the stream's position become the
   batch's last position, and the stream is *between batches* again.
4. **When due, checkpoint.** Under the core's lock (so no batch is half done)
   the state (pipeline + alerts + event-time clock) is snapshotted with the
   position, saved atomically (in line, or packed and written by a writer
   thread while scoring goes on), and only once durable is the position
   committed where the source keeps one (a Kafka offset commit, the journal
   truncated).

What breaks when the order is violated:

- **Checkpoint inside a batch** (between 1 and 3): the saved state includes a
  batch whose outputs may never land, paired with the position before it. A
  crash then replays that batch into a state that already holds it: counts and
  baselines double, and the lost outputs are never produced. :meth:`checkpoint`
  refuses a stream that is inside a batch (a failed sink leaves it there).
- **Position before acknowledgement** (3 before 2): a checkpoint taken then
  resumes *after* events whose anomalies and alerts never landed; nothing
  replays them: alerts are lost silently.
- **Commit before the save is durable** (4 out of order): the broker or the
  journal forgets input the last good checkpoint still needs.

A crash anywhere replays from the last checkpoint; the sinks are idempotent
(keyed by event id, alert key or source position), so the replay's outputs
land once.

Event time: each stream's pipeline keeps an event-time clock
(:mod:`tocsin.engine.admission`: the second largest admitted event time, so no
single event moves it), checkpointed with its state; the core hands it to the
alert grouping as the watermark that closes alert windows and resolves quiet
alerts, and it is where event-time timers (silence deadlines, closing buckets)
belong.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np

from tocsin.alerting.mutes import MuteBook, MuteRefresher
from tocsin.checkpoint.base import CheckpointStore
from tocsin.engine.feedback_labels import FeedbackLabels
from tocsin.engine.follow import ModelFollower
from tocsin.engine.retrain import DriftRetrainer
from tocsin.engine.health import Health
from tocsin.engine.metrics import DriverMetrics
from tocsin.engine.outputs import AlertGrouping, start_dispatcher
from tocsin.engine.pipeline import Pipeline, ScoredBatch
from tocsin.sinks.base import ProcessedBatch, Sink
from tocsin.sinks.store import StoreSink
from tocsin.engine.stats import RunStats
from tocsin.engine.shadow import ShadowModel
from tocsin.registry import CHALLENGER, CHAMPION
from tocsin.sensitive import Sealer, sealer_for
from tocsin.sources.base import SourceBatch
from tocsin.spec import AlertingSpec, PipelineSpec
from tocsin.store.sql import Store

log = logging.getLogger(__name__)

T = TypeVar("T")
#: seconds without a batch before a stream counts as idle and its clock follows wall time (silences fall due)
IDLE_AFTER = 5.0


@dataclass
class Stream:
    """One ordered input with state of its own: the runner's source, a Kafka partition, the API journal."""

    name: str
    pipeline: Pipeline
    alerts: AlertGrouping
    #: names the input in dead letters and derived event ids ("simulator:…", "kafka:topic/0", "api")
    source: str
    #: the driver's handle for it (a Kafka partition number), if any
    key: Any = None
    #: last position folded into the state (-1: none)
    position: int = -1
    #: position of the last durable checkpoint (-1: none)
    checkpointed: int = -1
    #: False from the moment a batch is folded in until every sink acknowledged its outputs
    between_batches: bool = True
    #: the position it resumed from (the one after its checkpoint); None when it started fresh
    resumed_at: int | None = None
    #: the metadata of the checkpoint it resumed from (sinks read what they saved there)
    resumed_meta: dict[str, Any] = field(default_factory=dict)
    #: the last position a previous owner may have emitted outputs for (-1: none known). A model switch waits
    #: until the stream is past it: events replayed after a crash must score as they first did, since their
    #: stored outputs stand (insert-or-ignore); switching inside the replay would change the state that follows
    replay_until: int = -1
    #: pipeline.events_seen when the last durable checkpoint was taken (a pipeline handed in warm has
    #: state worth saving before its first position)
    checkpointed_events: int = 0
    #: the model version in force at the last durable checkpoint (a switch alone is a change to save)
    checkpointed_model: int = 0
    #: a checkpoint being written in the background
    pending: PendingSave | None = None
    #: monotonic time of the latest snapshot (periodic checkpoints take the stream waiting longest)
    snapshot_at: float = 0.0
    #: (event-time watermark, wall time) after its latest batch with events: an idle stream's clock moves on
    #: by the wall time since (silence deadlines still fall due when nothing arrives)
    clock_at: tuple[float, float] = (float("-inf"), 0.0)

    def idle_clock(self, now: float) -> float:
        """The stream's event-time clock while no event arrives: its watermark, plus the wall time since its last
        batch once that is ``IDLE_AFTER`` seconds or more (an input is idle, not merely between two fetches of a
        backlog: moving the clock then could call silent an entity whose readings are still queued)."""
        watermark, wall = self.clock_at
        idle = now - wall
        return watermark + idle if idle >= IDLE_AFTER else watermark

    @property
    def dirty(self) -> bool:
        """State moved since the last checkpoint."""
        pipeline = self.pipeline
        return (self.position != self.checkpointed or pipeline.events_seen != self.checkpointed_events
                or pipeline.model_version != self.checkpointed_model)


@dataclass
class PendingSave:
    """A snapshot being written by the background writer; durable once ``future`` succeeded."""

    position: int
    events_seen: int
    model_version: int
    snapshot: dict[str, np.ndarray]
    meta: dict[str, Any]
    future: Future


def _call_once(component: str, action: Callable[[], T]) -> T:
    return action()


class DriverCore:
    """Runs batches through the pipeline, the sinks and the checkpoints, in the order the module states.

    ``retry(component, action)`` decides what a failed sink or checkpoint write does: the default
    raises (the run stops inside the batch, and the next one replays from the last checkpoint);
    the Kafka worker retries with back-off while its partitions are paused. ``commit(streams)``
    is called with the streams whose checkpoint became durable, to commit their positions to the
    source (``stream.checkpointed`` is the position saved).
    """

    def __init__(
        self,
        spec: PipelineSpec,
        *,
        driver: str,
        store: Store | None = None,
        checkpoints: CheckpointStore | None = None,
        sinks: Sequence[Sink] = (),
        alerting: AlertingSpec | None = None,
        dispatch: bool = True,
        metrics: DriverMetrics | None = None,
        health: Health | None = None,
        retry: Callable[[str, Callable[[], Any]], Any] | None = None,
        commit: Callable[[list[Stream]], None] | None = None,
        sealer: Sealer | None = None,
        follow: bool | None = None,
        worker: str = "0",
    ) -> None:
        self.spec = spec
        self.driver = driver
        self.worker = worker
        self.store = store if store is not None else Store(spec.store.url)
        self.checkpoints = checkpoints
        self.alerting: AlertingSpec = alerting or spec.alerting
        #: delivers routed alerts from the outbox (when a route names a channel beyond the store)
        self.dispatcher = start_dispatcher(self.store, self.alerting, spec.name) if dispatch else None
        self.store_sink = StoreSink(self.store, spec.name, self.alerting, on_written=self._wake_dispatcher)
        self.sinks: list[Sink] = [self.store_sink, *sinks]
        self.metrics = metrics or DriverMetrics(spec.name, driver, worker=worker)
        self.health = health or Health(None, worker=worker)
        self.retry = retry or _call_once
        self.commit = commit
        #: seals sensitive values before anything is stored (schema.sensitive; key from TOCSIN_ENCRYPTION_KEY)
        self.sealer = sealer if sealer is not None else sealer_for(spec)
        self.stats = RunStats()
        #: held while a step or a snapshot runs: a checkpoint never sees a half-done batch
        self.lock = threading.RLock()
        #: every batch handed to :meth:`process`, once its outputs are acknowledged
        self.listeners: list[Callable[[ScoredBatch, RunStats], None]] = []
        self._writer: ThreadPoolExecutor | None = None
        self._unacknowledged: list[ProcessedBatch] = []
        self._drift_reported = 0.0
        self._unmodelled_reported = 0
        self._shadow: ShadowModel | None = None
        #: the streams open in this process (the model follower installs into all of them)
        self.streams: list[Stream] = []
        #: fetches the versions the registry's aliases name (None: the pipeline's own fits score)
        self.follower: ModelFollower | None = None
        if spec.registry.follow if follow is None else follow:
            from tocsin.registry import open_registry

            self.follower = ModelFollower(open_registry(spec), spec.name, spec.registry.poll_interval,
                                          on_health=self._component_health).start()
        #: the drift policy (``drift.retrain``): a challenger trained on recent rows when the champion's inputs drift
        self.retrainer: DriftRetrainer | None = None
        if spec.drift.retrain and self.follower is not None:
            self.retrainer = DriftRetrainer(spec, self.follower.registry)
        #: what people said is normal, shared by every stream's alert grouping, read from the store ~1/s
        self.mutes = MuteBook()
        self.mute_refresher = MuteRefresher(self.store, spec.name, self.mutes)
        #: people's verdicts into the streams' label features (only pipelines with a `kind: confirmed` feature)
        self.feedback_labels: FeedbackLabels | None = None
        if any(feature.kind == "confirmed" for feature in spec.features):
            self.feedback_labels = FeedbackLabels(self.store, spec, self.sealer)
        self._pending_path = ""
        self._model_label: tuple[str, int, bool] | None = None

    # --- streams --------------------------------------------------------------------

    def open_stream(self, name: str, source: str, *, key: Any = None, pipeline: Pipeline | None = None,
                    resume: bool = True) -> Stream:
        """A stream with a fresh pipeline (or ``pipeline``), restored from its checkpoint when ``resume``
        and one exists; every sink is told, with the checkpoint's metadata."""
        stream = Stream(name, pipeline or Pipeline(self.spec), AlertGrouping(self.spec, self.alerting), source, key=key)
        stream.alerts.alerts.mutes = self.mutes
        checkpoint = self.retry("checkpoint", lambda: self.checkpoints.load(name)) if resume and self.checkpoints else None
        if checkpoint is not None:
            with self.lock:
                stream.pipeline.load_state_dict(checkpoint.state)
                stream.alerts.load_state_dict(checkpoint.state)
            stream.position = stream.checkpointed = checkpoint.offset
            stream.checkpointed_events = stream.pipeline.events_seen
            stream.checkpointed_model = stream.pipeline.model_version
            stream.resumed_at, stream.resumed_meta = checkpoint.offset + 1, dict(checkpoint.meta)
            log.info("%s: resuming at position %d (checkpoint of %s, %d events seen)", name, checkpoint.offset + 1,
                     time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(checkpoint.created_at)), stream.pipeline.events_seen)
        for sink in self.sinks:
            self.retry(sink.component, lambda sink=sink: sink.open(stream, stream.resumed_meta))
        self.streams.append(stream)
        self._report_model(stream)
        return stream

    def close_stream(self, stream: Stream, *, save: bool) -> None:
        """The stream leaves this process: with ``save`` it is checkpointed first (a revocation);
        without (a lost partition, whose new owner may have saved a newer one) a write in flight is
        cancelled if it has not started."""
        if save:
            self.checkpoint([stream])
        elif stream.pending is not None:
            stream.pending.future.cancel()
            stream.pending = None
        for sink in self.sinks:
            sink.close_stream(stream)
        if stream in self.streams:
            self.streams.remove(stream)

    # --- batches --------------------------------------------------------------------

    def process(self, work: Sequence[tuple[Stream, SourceBatch]], *, path: str, received: float | None = None) -> list[ProcessedBatch]:
        """Steps 1-3 for one batch of each listed stream (in the order given): process, every sink
        acknowledges, positions move. Returns the processed batches (outputs acknowledged).

        If a sink still fails after the retry policy, the batches stay *unacknowledged*: their streams
        are inside a batch (no checkpoint), the sinks keep their outputs, and nothing new is folded in
        until :meth:`acknowledge_pending` (called first by the next :meth:`process`) gets them out."""
        processed: list[ProcessedBatch] = []
        with self.lock:
            self.acknowledge_pending()
            self.follow_models()
            self.mute_refresher.refresh()
            if self.feedback_labels is not None:
                self.feedback_labels.refresh([s.pipeline for s in self.streams])
            for index, (stream, raw) in enumerate(work):
                if index + 1 < len(work):  # the next stream's batch decodes on the second core while this one is processed
                    following, ahead = work[index + 1]
                    following.pipeline.decode_ahead(ahead, following.source)
                if not len(raw):
                    if not stream.between_batches:
                        continue
                    stream.position = max(stream.position, raw.next_position - 1)
                    if raw.ended:
                        watermark = stream.pipeline.clock
                        scored = stream.pipeline.finish()  # the input ended: its open buckets close as they are
                    else:
                        watermark = stream.idle_clock(time.time())
                        scored = stream.pipeline.idle(watermark)  # silence deadlines that fell due while idle
                    if scored is None:
                        continue
                else:
                    scored = stream.pipeline.process_raw(raw, stream.source)
                    watermark = stream.pipeline.clock
                    stream.clock_at = (watermark, time.time())
                stream.between_batches = False
                outputs = stream.alerts.prepare(scored, watermark, self.sealer)
                comparison = self._shadow_compare(stream, scored, raw.next_position - 1)
                if self.retrainer is not None and scored.drift:
                    self.retrainer.observe(stream.pipeline, scored)
                if comparison is not None:
                    outputs.comparisons.append(comparison)
                item = ProcessedBatch(stream, raw, scored, outputs, received)
                for sink in self.sinks:
                    sink.send(item)
                processed.append(item)
            if not processed:
                return processed
            try:
                self._acknowledge(processed, path)
            except BaseException:
                self._unacknowledged, self._pending_path = processed, path
                raise
        return processed

    @property
    def unacknowledged(self) -> int:
        """Batches processed whose outputs a sink has not acknowledged yet (a sink is down)."""
        return len(self._unacknowledged)

    @property
    def pending_batches(self) -> list[ProcessedBatch]:
        """Those batches (their outputs wait in the sinks)."""
        return list(self._unacknowledged)

    def acknowledge_pending(self) -> bool:
        """Flush the sinks for batches a failed sink left unacknowledged, and move their positions on.
        True when nothing is pending (anymore); raises like :meth:`process` when a sink still fails."""
        with self.lock:
            if self._unacknowledged:
                self._acknowledge(self._unacknowledged, self._pending_path)
                self._unacknowledged = []
            return True

    def _acknowledge(self, processed: list[ProcessedBatch], path: str) -> None:
        for sink in self.sinks:
            self.retry(sink.component, sink.flush)
        for item in processed:
            item.stream.position = item.raw.next_position - 1
            item.stream.between_batches = True
        for item in processed:
            self._account(item, path)

    def tick(self, streams: Sequence[Stream], *, path: str) -> list[ProcessedBatch]:
        """Give idle ``streams`` (no input this round) what fell due (silences, a profiled source's buckets): each
        gets an empty batch, which moves its clock by the wall time since its last event (see :meth:`Stream.idle_clock`)."""
        work = [(s, SourceBatch(positions=np.empty(0, dtype=np.int64), next_position=s.position + 1))
                for s in streams if s.pipeline.has_timers]
        return self.process(work, path=path) if work else []

    def follow_models(self) -> list[Stream]:
        """Between batches: install the champion the registry names into every stream that runs another
        model, then checkpoint those streams at once, so the switch (version and position) is in the
        state a crash resumes from. A stream still replaying what a previous owner may have emitted
        (:attr:`Stream.replay_until`) switches once past it. A version trained for another spec is refused (logged, health
        ``registry`` down) and not tried again. The streams switched."""
        champion = self.follower.model(CHAMPION) if self.follower is not None else None
        if champion is None:
            return []
        switched = []
        with self.lock:
            for stream in self.streams:
                pipeline = stream.pipeline
                if (pipeline.model_version == champion.version or not stream.between_batches or self._unacknowledged
                        or stream.position < stream.replay_until):
                    continue
                try:
                    pipeline.install_model(champion.arrays, champion.version, stream.position)
                except ValueError as error:
                    log.error("%s: model version %d refused: %s", stream.name, champion.version, error)
                    self.follower.refuse(champion.version, error)
                    return switched
                log.warning("%s: model version %d scores from position %d on", stream.name, champion.version, stream.position + 1)
                switched.append(stream)
                self._report_model(stream)
            if switched:
                self.checkpoint(switched)
        return switched

    def _shadow_compare(self, stream: Stream, scored: ScoredBatch, position: int) -> dict[str, Any] | None:
        """The challenger's comparison with the champion on this batch, when a challenger is named (and is
        not the model already scoring)."""
        challenger = self.follower.model(CHALLENGER) if self.follower is not None else None
        if challenger is None or challenger.version == stream.pipeline.model_version or challenger.version in self.follower.refused:
            return None
        shadow = self._shadow
        if shadow is None or shadow.version != challenger.version:
            try:
                stream.pipeline.check_model(challenger.arrays, challenger.version)
            except ValueError as error:
                self.follower.refused[challenger.version] = str(error)  # health stays: the champion scores
                log.error("challenger version %d refused: %s", challenger.version, error)
                return None
            shadow = self._shadow = ShadowModel(self.spec, stream.pipeline.feature_names, challenger.version, challenger.arrays)
        return shadow.compare(stream.pipeline, scored, stream.name, position)

    def _component_health(self, component: str, error: BaseException | None) -> None:
        if error is None:
            self.health.up(component)
        else:
            self.health.down(component, error)

    def _account(self, item: ProcessedBatch, path: str) -> None:
        scored = item.scored
        self.stats.add(scored)
        self.health.events = self.stats.events
        self.metrics.observe_batch(scored, path, item.received)
        self._report_model(item.stream)
        if time.monotonic() - self._drift_reported >= 1.0:  # gauges, not a hot path: once a second at most
            self._drift_reported = time.monotonic()
            worst: dict[str, tuple[float, float]] = {}
            for stream in self.streams:
                for column, (psi, ks) in stream.pipeline.drift.distances().items():
                    if column not in worst or psi > worst[column][0]:
                        worst[column] = (psi, ks)
            self.metrics.set_drift(worst)
            unmodelled = sum(stream.pipeline.unmodelled_series for stream in self.streams)
            self.metrics.set_unmodelled(unmodelled)
            if unmodelled > 2 * self._unmodelled_reported:
                log.warning("%d series are past the series budget (features max_series) and not modelled: their readings "
                            "score 0; raise max_series or give the process more memory", unmodelled)
                self._unmodelled_reported = unmodelled
        for listener in self.listeners:
            listener(scored, self.stats)

    def _report_model(self, stream: Stream) -> None:
        pipeline = stream.pipeline
        label = (self.spec.detector.kind, pipeline.model_version or pipeline.fits, pipeline.is_warm)
        if label != self._model_label:
            self._model_label = label
            self.metrics.set_model(label[0], label[1], "warm" if label[2] else "warming_up")

    def _wake_dispatcher(self) -> None:
        if self.dispatcher is not None:
            self.dispatcher.wake()

    # --- checkpoints ----------------------------------------------------------------

    def checkpoint(self, streams: Sequence[Stream], *, background: bool = False) -> None:
        """Step 4 for ``streams`` that moved: snapshot (under the lock), save, then commit.

        With ``background`` the snapshot is packed and written by a writer thread while scoring
        goes on (a 57 MB state took ~125 ms to write: a stall every interval otherwise) and is
        committed once durable (:meth:`settle_checkpoints`); one write per stream at a time.
        Otherwise this waits for any write in flight and saves in line.
        """
        if self.checkpoints is None:
            return
        saved: list[Stream] = []
        for stream in streams:
            if stream.pending is not None:
                if background:
                    continue
                self._settle(stream, wait=True)
            with self.lock:  # a batch being processed finishes first
                if not stream.between_batches:
                    log.warning("%s is inside a batch whose outputs were not acknowledged: no checkpoint; the next run "
                                "replays from the last one", stream.name)
                    continue
                if not stream.dirty:
                    continue
                position, snapshot, meta = self.snapshot(stream)
            events_seen, model = int(meta["events_seen"]), int(meta["model_version"])
            if background:
                future = self._background_writer().submit(self._timed_save, stream.name, snapshot, position, meta)
                stream.pending = PendingSave(position, events_seen, model, snapshot, meta, future)
                continue
            self._save(stream, position, events_seen, model, snapshot, meta)
            saved.append(stream)
        self._commit(saved)

    def snapshot(self, stream: Stream) -> tuple[int, dict[str, np.ndarray], dict[str, Any]]:
        """(position, state, meta) of ``stream``, consistent: taken under the lock, between batches.
        The arrays are copies (or views of append-only data), so later batches cannot change them."""
        with self.lock:
            state = stream.pipeline.state_dict()
            state.update(stream.alerts.state_dict())
            meta: dict[str, Any] = {"pipeline": self.spec.name, "driver": self.driver, "worker": self.worker,
                                    "pid": os.getpid(), "events_seen": stream.pipeline.events_seen,
                                    "model_version": stream.pipeline.model_version,
                                    "alerts_open": stream.alerts.alerts.open_alerts}
            for sink in self.sinks:
                meta.update(sink.checkpoint_meta(stream))
            stream.snapshot_at = time.monotonic()
            return stream.position, state, meta

    def _timed_save(self, name: str, snapshot: dict[str, np.ndarray], position: int, meta: dict[str, Any]) -> None:
        started = time.perf_counter()
        self.checkpoints.save(name, snapshot, position, meta=meta)
        self.metrics.observe_checkpoint(time.perf_counter() - started)

    def _save(self, stream: Stream, position: int, events_seen: int, model: int, snapshot: dict[str, np.ndarray],
              meta: dict[str, Any]) -> None:
        self.retry("checkpoint", lambda: self._timed_save(stream.name, snapshot, position, meta))
        stream.checkpointed, stream.checkpointed_events, stream.checkpointed_model = position, events_seen, model

    def _settle(self, stream: Stream, wait: bool) -> bool:
        """Settle ``stream``'s write in flight if it is done (or ``wait``); a failed one is saved again
        in line with the same snapshot, like any failed checkpoint. True when it settled."""
        pending = stream.pending
        if not wait and not pending.future.done():
            return False
        stream.pending = None
        try:
            pending.future.result()
            stream.checkpointed, stream.checkpointed_events = pending.position, pending.events_seen
            stream.checkpointed_model = pending.model_version
            self.health.up("checkpoint")
        except Exception as error:  # noqa: BLE001 - the same retry as a failed in-line save
            self.health.down("checkpoint", error)
            self._save(stream, pending.position, pending.events_seen, pending.model_version, pending.snapshot, pending.meta)
        return True

    def settle_checkpoints(self, streams: Sequence[Stream]) -> None:
        """Commit the background checkpoints of ``streams`` that became durable since the last call."""
        self._commit([s for s in streams if s.pending is not None and self._settle(s, wait=False)])

    def _commit(self, streams: list[Stream]) -> None:
        if streams and self.commit is not None:
            self.commit(streams)

    def _background_writer(self) -> ThreadPoolExecutor:
        if self._writer is None:
            self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tocsin-checkpoint",
                                              initializer=_yield_cpu_to_scoring)
        return self._writer

    # --- end ------------------------------------------------------------------------

    def close(self) -> None:
        """Wait for checkpoint writes, close the sinks and stop the dispatcher (checkpoint first)."""
        if self._writer is not None:
            self._writer.shutdown(wait=True)
            self._writer = None
        if self.retrainer is not None:
            self.retrainer.join(60)  # a retrain under way registers its version before the registry closes
        if self.follower is not None:
            self.follower.stop()
            self.follower.registry.close()
            self.follower = None
        self.stats.finished = time.monotonic()
        for sink in self.sinks:
            sink.close()
        if self.dispatcher is not None:
            self.dispatcher.stop()
            self.dispatcher = None


def _yield_cpu_to_scoring() -> None:
    """Run the calling (checkpoint writer) thread at a lower CPU priority, where the OS allows it:
    when the cores are busy, writing a checkpoint should wait, not the next batch's events."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)  # Linux: per thread
    except (AttributeError, OSError):  # pragma: no cover - other platforms, or not permitted
        pass
