"""The service's Prometheus metrics: a :class:`~tocsin.engine.metrics.DriverMetrics` of driver ``api``
(a registry of its own per app instance, so two apps in one test process never collide) plus what
only the API has, the depth of the ``POST /v1/events`` queue.

Every name here is queried by ``deploy/grafana/tocsin.json``; a test checks
that each metric the dashboard queries is exported.
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import Gauge

from tocsin.engine.metrics import CONTENT_TYPE, DriverMetrics
from tocsin.vocabulary import SEVERITIES

__all__ = ["CONTENT_TYPE", "SEVERITIES", "ServiceMetrics"]


class ServiceMetrics(DriverMetrics):
    """The API's metrics; ``path`` is ``score`` (sync) or ``events`` (queued)."""

    def __init__(self, pipeline: str, *, worker: int | str = 0) -> None:
        super().__init__(pipeline, "api", worker=worker)
        self.queue_depth = Gauge("tocsin_queue_depth", "Events accepted by POST /v1/events and not yet processed", ["pipeline"], registry=self.registry)

    def watch_queue(self, depth: Callable[[], int]) -> None:
        self.queue_depth.labels(self.pipeline).set_function(lambda: float(depth()))
