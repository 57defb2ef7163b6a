"""The service's Prometheus metrics, in a registry of their own per app instance
(so two apps in one test process never collide).

Every name here is queried by ``deploy/grafana/tocsin.json``; a test checks
that each metric the dashboard queries is exported.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics, generate_latest
from prometheus_client import CONTENT_TYPE_LATEST as CONTENT_TYPE  # noqa: N811

# The ``*_created`` timestamp series double the output and no dashboard reads them.
disable_created_metrics()

SEVERITIES = ("info", "warning", "critical")
BATCH_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
LAG_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class ServiceMetrics:
    """Counters, histograms and gauges of one service; ``path`` is ``score`` (sync) or ``events`` (queued)."""

    def __init__(self, pipeline: str) -> None:
        self.pipeline = pipeline
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.events_in = Counter("tocsin_events_in", "Events received", ["pipeline", "path"], registry=r)
        self.events_out = Counter("tocsin_events_out", "Events that got a decision (scored or passed during warm-up)", ["pipeline", "path"], registry=r)
        self.dead_letters = Counter("tocsin_dead_letters", "Events rejected by validation, with a reason", ["pipeline", "path"], registry=r)
        self.anomalies = Counter("tocsin_anomalies", "Anomalies by severity", ["pipeline", "severity"], registry=r)
        self.batch_latency = Histogram(
            "tocsin_batch_latency_seconds", "Pipeline time per batch (decode to decisions)", ["pipeline", "path"],
            buckets=BATCH_BUCKETS, registry=r,
        )
        self.decision_lag = Histogram(
            "tocsin_event_decision_lag_seconds", "From the service receiving an event to its decision", ["pipeline", "path"],
            buckets=LAG_BUCKETS, registry=r,
        )
        self.model_info = Gauge(
            "tocsin_model_info", "The model in use (value 1); version counts fits", ["pipeline", "detector", "version", "status"], registry=r
        )
        self.checkpoint_age = Gauge("tocsin_checkpoint_age_seconds", "Seconds since pipeline state was last checkpointed", ["pipeline"], registry=r)
        self.queue_depth = Gauge("tocsin_queue_depth", "Events accepted by POST /v1/events and not yet processed", ["pipeline"], registry=r)
        for path in ("score", "events"):
            for metric in (self.events_in, self.events_out, self.dead_letters, self.batch_latency, self.decision_lag):
                metric.labels(pipeline, path)
        for severity in SEVERITIES:
            self.anomalies.labels(pipeline, severity)
        self._model_labels: tuple[str, ...] | None = None

    def set_model(self, detector: str, version: int, status: str) -> None:
        labels = (self.pipeline, detector, str(version), status)
        if labels != self._model_labels:
            if self._model_labels is not None:
                self.model_info.remove(*self._model_labels)
            self.model_info.labels(*labels).set(1)
            self._model_labels = labels

    def watch_checkpoint(self, last_checkpoint: Callable[[], float | None]) -> None:
        """Report checkpoint age from ``last_checkpoint()`` (a monotonic time, None: never) at each scrape."""

        def age() -> float:
            last = last_checkpoint()
            return float("nan") if last is None else time.monotonic() - last

        self.checkpoint_age.labels(self.pipeline).set_function(age)

    def watch_queue(self, depth: Callable[[], int]) -> None:
        self.queue_depth.labels(self.pipeline).set_function(lambda: float(depth()))

    def render(self) -> bytes:
        return generate_latest(self.registry)

    def exported_names(self) -> set[str]:
        """Every sample name this registry exports (``..._total``, ``..._bucket`` included)."""
        return {sample.name for family in self.registry.collect() for sample in family.samples}
