"""Alerting: from anomalies to alerts people can act on, and their delivery.

* :mod:`~tocsin.spec.alerting` (in the spec package): the ``alerting`` section;
* :mod:`~tocsin.alerting.patterns`: the pattern an anomaly's explanation shows;
* :mod:`~tocsin.alerting.budget`: the per-day alert budget and its cut-off;
* :mod:`~tocsin.alerting.manager`: grouping, suppression, severity, lifecycle, routing;
* :mod:`~tocsin.alerting.tables` and :mod:`~tocsin.alerting.outbox`: alert details and
  the delivery outbox, written in the store's transaction;
* :mod:`~tocsin.alerting.dispatcher` and :mod:`~tocsin.alerting.channels`: delivery.

See ``docs/alerting.md``.
"""

from tocsin.alerting.budget import AlertBudget
from tocsin.spec import AlertingSpec
from tocsin.alerting.manager import AlertChange, AlertChanges, AlertManager, idempotency_key
from tocsin.alerting.outbox import alert_documents, write_changes

__all__ = ["AlertBudget", "AlertChange", "AlertChanges", "AlertManager", "AlertingSpec", "alert_documents", "idempotency_key", "write_changes"]
