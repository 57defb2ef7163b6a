"""The embedded driver: poll a source (a simulator or a file) in micro-batches through the driver core.

A micro-batch is bounded by ``runner.batch_size`` events and by
``runner.max_wait`` seconds, whichever comes first, so latency stays bounded
when the input is slow and throughput stays high when it is fast. Outputs,
checkpoints and their order are the driver core's (:mod:`tocsin.engine.core`):
this loop only reads, hands each batch over and says when to checkpoint. After
a crash the run resumes from the last checkpoint and replays; the store is
idempotent, so the replay creates no duplicates.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from tocsin.checkpoint import open_checkpoint_store
from tocsin.checkpoint.base import CheckpointStore
from tocsin.engine.core import DriverCore, Stream
from tocsin.engine.gc_tuning import tune_gc_for_hot_loop
from tocsin.engine.metrics import DriverMetrics
from tocsin.engine.pipeline import Pipeline, ScoredBatch
from tocsin.engine.stats import RunStats, empty_run_problem
from tocsin.sources.base import Source, SourceBatch
from tocsin.spec import AlertingSpec, PipelineSpec
from tocsin.store.sql import Store

log = logging.getLogger(__name__)

__all__ = ["RunStats", "Runner"]


class Runner:
    """Drives one pipeline over one source until the source ends or :meth:`stop` is called.

    ``checkpoints``: a store, None for the spec's (``stream.checkpoint_url`` or ``checkpoint.dir``),
    or False for none (backtests always start fresh). ``follow``: install the registry's champion
    when it changes (default: ``registry.follow``).
    """

    def __init__(
        self,
        spec: PipelineSpec,
        source: Source,
        pipeline: Pipeline | None = None,
        store: Store | None = None,
        checkpoints: CheckpointStore | None | bool = None,
        on_batch: Callable[[ScoredBatch, RunStats], None] | None = None,
        alerting: AlertingSpec | None = None,
        dispatch: bool = True,
        metrics: DriverMetrics | None = None,
        follow: bool | None = None,
    ) -> None:
        self.spec = spec
        self.source = source
        if checkpoints is None or checkpoints is True:
            checkpoints = open_checkpoint_store(spec.stream.checkpoint_url or Path(spec.checkpoint.dir), spec.name)
        self.core = DriverCore(spec, driver="runner", store=store, checkpoints=checkpoints or None, alerting=alerting,
                               dispatch=dispatch, metrics=metrics, follow=follow)
        self.core.listeners.append(self._on_batch)
        self.on_batch = on_batch
        self._pipeline = pipeline
        self._stream: Stream | None = None
        self._stop = threading.Event()
        self._last_checkpoint = time.monotonic()

    # --- what callers read -------------------------------------------------------------

    @property
    def stream(self) -> Stream:
        """The source's stream (opened fresh, without its checkpoint, if :meth:`restore` was not called)."""
        if self._stream is None:
            self._stream = self.core.open_stream(self.partition, self.source.name, pipeline=self._pipeline, resume=False)
        return self._stream

    @property
    def pipeline(self) -> Pipeline:
        return self.stream.pipeline

    @property
    def store(self) -> Store:
        return self.core.store

    @property
    def checkpoints(self) -> CheckpointStore | None:
        return self.core.checkpoints

    @property
    def alerts(self):  # noqa: ANN201 - the stream's AlertManager
        return self.stream.alerts.alerts

    @property
    def stats(self) -> RunStats:
        return self.core.stats

    @property
    def partition(self) -> str:
        return self.source.name

    @property
    def position(self) -> int:
        """The next position to read (the one after the last folded into the state)."""
        return self.stream.position + 1

    @property
    def resumed_at(self) -> int | None:
        return self.stream.resumed_at

    def problem(self) -> str | None:
        """Why the finished run decided nothing (every record a dead letter, a warm-up longer than the
        data, nothing after the checkpoint), or None when it scored events."""
        return empty_run_problem(self.stats, self.spec.detector.warmup_events, self.resumed_at, self.pipeline.events_seen)

    # --- control -----------------------------------------------------------------------

    def stop(self) -> None:
        """Ask the loop to finish the current batch, checkpoint and return."""
        self._stop.set()

    def restore(self) -> bool:
        """Open the stream from its last checkpoint, if any, and seek the source to its position."""
        self._stream = self.core.open_stream(self.partition, self.source.name, pipeline=self._pipeline, resume=True)
        if self._stream.resumed_at is None:
            return False
        self.source.seek(self._stream.resumed_at)
        log.warning("%s: resuming at position %d from the last checkpoint (--fresh starts over)", self.partition,
                    self._stream.resumed_at)
        return True

    def run(self, resume: bool = True) -> RunStats:
        if resume and self._stream is None:
            self.restore()
        stream = self.stream
        batch_size, max_wait = self.spec.runner.batch_size, self.spec.runner.max_wait
        tune_gc_for_hot_loop()
        ahead: tuple[SourceBatch | None, float] | None = None  # the next batch, read while this one is processed
        try:
            while not self._stop.is_set():
                if ahead is None:
                    received = time.monotonic()
                    raw = self.source.read(batch_size, max_wait)
                else:
                    (raw, received), ahead = ahead, None
                if raw is not None and len(raw) == batch_size:
                    # a full batch: the input is ahead of us, so the next is most likely there already; reading it
                    # now lets its decoding run on the second core while this one is processed (what is read
                    # ahead is not processed, so a stop or crash here loses nothing: the checkpoint is behind it)
                    ahead = (self.source.read(batch_size, 0.0), time.monotonic())
                    if ahead[0] is not None:
                        stream.pipeline.decode_ahead(ahead[0], stream.source)
                if raw is None:
                    if stream.pipeline.profiler is not None:  # a profiled file's last buckets close as they are
                        ended = SourceBatch(positions=np.empty(0, dtype=np.int64), next_position=stream.position + 1, ended=True)
                        self.core.process([(stream, ended)], path="stream", received=received)
                    break
                self.core.process([(stream, raw)], path="stream", received=received)
                if time.monotonic() - self._last_checkpoint >= self.spec.checkpoint.interval:
                    self.checkpoint()
        finally:
            self.checkpoint()  # refused (with a warning) when it stopped inside a batch
            self.core.close()
        return self.stats

    def checkpoint(self) -> None:
        """Save (state, position); the sinks already acknowledged every output before this position."""
        self.core.checkpoint([self.stream])
        self._last_checkpoint = time.monotonic()

    def _on_batch(self, scored: ScoredBatch, stats: RunStats) -> None:
        if self.on_batch is not None:
            self.on_batch(scored, stats)
