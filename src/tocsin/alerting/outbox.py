"""The outbox: alerts, their details and their pending deliveries written in one transaction,
and the reads and state changes a dispatcher makes on it.

Writes are idempotent so a replay from a checkpoint changes nothing twice:

* ``alerts`` rows are upserted on ``(pipeline, alert_key)`` with absolute
  values (count, severity, score); ``status`` is set only on insert, so an
  analyst's acknowledgement survives later updates of the same alert;
* auto-resolve moves ``open``/``acknowledged`` to ``resolved`` (a no-op when
  already resolved);
* deliveries are inserted "on conflict do nothing" on ``(pipeline, alert_key,
  channel, notification)``: a replay never re-queues a delivery, delivered or not.
  Deliveries to the ``store`` channel are recorded as delivered by this very
  transaction.
"""

from __future__ import annotations

import time
from functools import lru_cache
from typing import Any

from sqlalchemy import Connection, and_, bindparam, select, update
from sqlalchemy.dialects import postgresql, sqlite

from tocsin.alerting.manager import AlertChanges
from tocsin.alerting.tables import alert_deliveries, alert_details, ensure_tables
from tocsin.store.sql import Store
from tocsin.store.tables import alerts
from tocsin.vocabulary import score_100


@lru_cache(maxsize=None)
def _statements(dialect: str) -> tuple[Any, Any, Any, Any, Any]:
    """The idempotent writes of :func:`write_changes` for ``dialect``, built once: constructing an upsert
    (its ``excluded`` columns) cost more than executing it for a batch of a few alerts."""
    insert = sqlite.insert if dialect == "sqlite" else postgresql.insert
    statement = insert(alerts)
    alerts_upsert = statement.on_conflict_do_update(
        index_elements=["pipeline", "alert_key"],
        set_={
            "severity": statement.excluded.severity,
            "score": statement.excluded.score,
            "count": statement.excluded.count,
            "updated_at": statement.excluded.updated_at,
        },
    )
    statement = insert(alert_details)
    details_upsert = statement.on_conflict_do_update(
        index_elements=["pipeline", "alert_key"],
        set_={name: statement.excluded[name] for name in ("last_event_time", "suppressed", "rule", "channels", "updated_at")},
    )
    deliveries_insert = insert(alert_deliveries).on_conflict_do_nothing(
        index_elements=["pipeline", "alert_key", "channel", "notification"]
    )
    keys = bindparam("b_keys", expanding=True)
    resolve_alerts = (
        update(alerts)
        .where(alerts.c.pipeline == bindparam("b_pipeline"), alerts.c.alert_key.in_(keys), alerts.c.status != "resolved")
        .values(status="resolved", updated_at=bindparam("b_now"))
    )
    resolve_details = (
        update(alert_details)
        .where(alert_details.c.pipeline == bindparam("b_pipeline"), alert_details.c.alert_key.in_(keys),
               alert_details.c.resolved_reason.is_(None))
        .values(resolved_reason="quiet", updated_at=bindparam("b_now"))
    )
    return alerts_upsert, details_upsert, deliveries_insert, resolve_alerts, resolve_details


def write_changes(
    conn: Connection,
    pipeline: str,
    changes: AlertChanges,
    *,
    store_channels: frozenset[str] = frozenset(),
    group_wait: float | None = None,
    now: float | None = None,
) -> None:
    """Write ``changes`` inside the caller's transaction ``conn`` (the one that writes the anomalies)."""
    if not changes:
        return
    now = time.time() if now is None else now
    alerts_upsert, details_upsert, deliveries_insert, resolve_alerts, resolve_details = _statements(conn.dialect.name)
    if changes.alerts:
        rows = [{**row, "pipeline": pipeline, "created_at": now, "updated_at": now} for row in changes.alerts]
        conn.execute(alerts_upsert, rows)
    if changes.details:
        rows = [{**row, "pipeline": pipeline, "resolved_reason": None, "updated_at": now} for row in changes.details]
        conn.execute(details_upsert, rows)
    if changes.deliveries:
        first_attempt = now + (group_wait or 0.0)
        rows = []
        for row in changes.deliveries:
            stored = row["channel"] in store_channels
            rows.append(
                {
                    **row,
                    "pipeline": pipeline,
                    "status": "delivered" if stored else "pending",
                    "attempts": 1 if stored else 0,
                    "next_attempt_at": now if stored else first_attempt,
                    "last_error": None,
                    "delivered_at": now if stored else None,
                    "created_at": now,
                    "updated_at": now,
                }
            )
        conn.execute(deliveries_insert, rows)
    if changes.resolved:
        params = {"b_pipeline": pipeline, "b_keys": list(changes.resolved), "b_now": now}
        conn.execute(resolve_alerts, params)
        conn.execute(resolve_details, params)


# --- reads -------------------------------------------------------------------------


def alert_documents(store: Store, pipeline: str, keys: list[str] | None = None, alert_ids: list[int] | None = None) -> list[dict[str, Any]]:
    """Alerts as people and channels see them: the ``alerts`` row, its details (pattern, window,
    ``budget_cutoff``, ``suppressed``…) and ``deliveries``: one entry per channel and notification
    with its status, attempts and last error."""
    ensure_tables(store.engine)
    a, d = alerts, alert_details
    statement = select(a, *[d.c[n] for n in ("pattern", "window_start", "window_end", "last_event_time", "suppressed",
                                              "budget_cutoff", "rule", "attributes", "channels", "resolved_reason")])
    statement = statement.select_from(a.outerjoin(d, and_(d.c.pipeline == a.c.pipeline, d.c.alert_key == a.c.alert_key)))
    statement = statement.where(a.c.pipeline == pipeline)
    if keys is not None:
        statement = statement.where(a.c.alert_key.in_(keys))
    if alert_ids is not None:
        statement = statement.where(a.c.id.in_([int(i) for i in alert_ids]))
    documents = store.fetch(statement.order_by(a.c.event_time, a.c.id))
    if not documents:
        return []
    o = alert_deliveries
    deliveries = store.fetch(
        select(o.c.alert_key, o.c.channel, o.c.notification, o.c.status, o.c.attempts, o.c.last_error,
               o.c.delivered_at, o.c.idempotency_key)
        .where(o.c.pipeline == pipeline, o.c.alert_key.in_([doc["alert_key"] for doc in documents]))
        .order_by(o.c.id)
    )
    by_key: dict[str, list[dict[str, Any]]] = {}
    for row in deliveries:
        by_key.setdefault(row.pop("alert_key"), []).append(row)
    for doc in documents:
        doc["score_100"] = score_100(doc["score"])
        doc["deliveries"] = by_key.get(doc["alert_key"], [])
    return documents


def delivery_rows(store: Store, pipeline: str | None = None) -> list[dict[str, Any]]:
    """Every outbox row (tests, the dashboard, operators)."""
    ensure_tables(store.engine)
    statement = select(alert_deliveries)
    if pipeline is not None:
        statement = statement.where(alert_deliveries.c.pipeline == pipeline)
    return store.fetch(statement.order_by(alert_deliveries.c.id))


# --- the dispatcher's side -------------------------------------------------------------


def due_deliveries(conn: Connection, now: float, limit: int, pipeline: str | None = None) -> list[dict[str, Any]]:
    o = alert_deliveries
    statement = select(o).where(o.c.status == "pending", o.c.next_attempt_at <= now)
    if pipeline is not None:
        statement = statement.where(o.c.pipeline == pipeline)
    statement = statement.order_by(o.c.next_attempt_at, o.c.id).limit(limit)
    return [dict(row._mapping) for row in conn.execute(statement)]


def claim(conn: Connection, row: dict[str, Any], now: float, lease: float) -> bool:
    """Take ``row`` for one attempt: push its next attempt a lease ahead, unless another
    dispatcher got there first (compare-and-set on ``next_attempt_at``)."""
    o = alert_deliveries
    result = conn.execute(
        update(o)
        .where(o.c.id == row["id"], o.c.status == "pending", o.c.next_attempt_at == row["next_attempt_at"])
        .values(next_attempt_at=now + lease, attempts=o.c.attempts + 1, updated_at=now)
    )
    return result.rowcount == 1


def mark_delivered(conn: Connection, delivery_id: int, now: float) -> None:
    o = alert_deliveries
    conn.execute(
        update(o).where(o.c.id == delivery_id)
        .values(status="delivered", delivered_at=now, last_error=None, updated_at=now)
    )


def mark_failed_attempt(conn: Connection, delivery_id: int, now: float, error: str, retry_at: float | None) -> None:
    """Record a failed attempt: due again at ``retry_at``, or ``failed`` for good when None."""
    o = alert_deliveries
    values: dict[str, Any] = {"last_error": error[:2000], "updated_at": now}
    if retry_at is None:
        values["status"] = "failed"
    else:
        values["next_attempt_at"] = retry_at
    conn.execute(update(o).where(o.c.id == delivery_id).values(**values))
