"""From anomalies to alerts: which anomalies deserve a person's attention.

An anomaly is a scored event over the threshold; an alert is what a person is
asked to look at. Every driver (the embedded runner, the HTTP service, the Kafka
worker) groups anomalies into alerts with :class:`tocsin.alerting.AlertManager`
(one alert per entity and pattern within a window, suppression, budget,
lifecycle, routed delivery; see ``docs/alerting.md``), re-exported here, through
:class:`tocsin.engine.outputs.OutputWriter`.

:func:`alerts_from_anomalies` is the stateless, ungrouped form: every anomaly of
severity ``warning`` or above is an alert keyed by its event id. No driver uses
it; the sink-cost baseline of ``bench/throughput.py`` does.
"""

from __future__ import annotations

from typing import Any

from tocsin.alerting import AlertChanges, AlertingSpec, AlertManager, alert_documents, write_changes
from tocsin.vocabulary import ALERT_SEVERITIES

__all__ = ["AlertChanges", "AlertManager", "AlertingSpec", "alert_documents", "alerts_from_anomalies", "write_changes"]



def alerts_from_anomalies(anomalies: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Alert rows for the anomalies that reach ``warning``, in the store's shape.

    >>> alerts_from_anomalies([
    ...     {"event_id": "e1", "entity": "c1", "event_time": 1.0, "score": 0.9999, "severity": "critical", "explanation": []},
    ...     {"event_id": "e2", "entity": "c2", "event_time": 2.0, "score": 0.996, "severity": "info", "explanation": []},
    ... ])[0]["alert_key"]
    'e1'
    """
    return [
        {
            "alert_key": a["event_id"],
            "entity": a["entity"],
            "severity": a["severity"],
            "status": "open",
            "first_event_id": a["event_id"],
            "event_time": a["event_time"],
            "score": a["score"],
            "count": 1,
            "explanation": a["explanation"],
        }
        for a in anomalies
        if a["severity"] in ALERT_SEVERITIES
    ]
