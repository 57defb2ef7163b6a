"""Prometheus gauges for alerting, registered in the caller's registry (the API keeps one per app).

``tocsin_alert_budget_cutoff`` is the calibrated score a new alert needs under
the budget right now (the pipeline's lowest alerting severity when the budget
is on pace); ``tocsin_alerts_opened_today`` and
``tocsin_alert_budget_rejected_today`` show the budget at work;
``tocsin_anomalies_muted`` counts anomalies people's mutes kept out of alerts;
``tocsin_alert_deliveries_pending`` is the outbox backlog (it grows during a
channel outage and drains after).
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Gauge

from tocsin.alerting.manager import AlertManager


def register_alert_metrics(
    registry: CollectorRegistry,
    pipeline: str,
    manager: Callable[[], AlertManager | None],
    pending_deliveries: Callable[[], int] | None = None,
) -> dict[str, Gauge]:
    """Gauges read at scrape time from ``manager()`` (a callable, so a restarted runner's manager is seen)."""

    def read(value: Callable[[AlertManager], float]) -> Callable[[], float]:
        def get() -> float:
            current = manager()
            return float("nan") if current is None else float(value(current))

        return get

    gauges = {
        "cutoff": Gauge("tocsin_alert_budget_cutoff", "Calibrated score needed to open a new alert (raised by the alert budget)", ["pipeline"], registry=registry),
        "opened": Gauge("tocsin_alerts_opened_today", "Alerts opened in the current event-time day (UTC), counted by the budget", ["pipeline"], registry=registry),
        "rejected": Gauge("tocsin_alert_budget_rejected_today", "Alert openings refused by the budget in the current event-time day", ["pipeline"], registry=registry),
        "open": Gauge("tocsin_alerts_active", "Alerts open or waiting out their quiet period", ["pipeline"], registry=registry),
        "muted": Gauge("tocsin_anomalies_muted", "Anomalies a mute kept out of every alert (since the stream started, checkpointed)", ["pipeline"], registry=registry),
        "mutes": Gauge("tocsin_alert_mutes", "Mutes read from the store and not lifted", ["pipeline"], registry=registry),
    }
    gauges["cutoff"].labels(pipeline).set_function(read(lambda m: m.budget.cutoff))
    gauges["opened"].labels(pipeline).set_function(read(lambda m: m.budget.opened_today))
    gauges["rejected"].labels(pipeline).set_function(read(lambda m: m.budget.rejected_today))
    gauges["open"].labels(pipeline).set_function(read(lambda m: m.open_alerts))
    gauges["muted"].labels(pipeline).set_function(read(lambda m: m.muted))
    gauges["mutes"].labels(pipeline).set_function(read(lambda m: len(m.mutes)))
    if pending_deliveries is not None:
        gauges["pending"] = Gauge("tocsin_alert_deliveries_pending", "Alert deliveries waiting in the outbox", ["pipeline"], registry=registry)
        gauges["pending"].labels(pipeline).set_function(lambda: float(pending_deliveries()))
    return gauges
