"""The alerting tables, on the store's own MetaData: alert details and the delivery outbox.

They live in the same database as ``alerts`` so one transaction writes an alert,
its details and its pending deliveries: an alert never exists without the
deliveries it is owed (the transactional-outbox pattern).

* ``alert_details`` (one row per alert, key ``(pipeline, alert_key)``): what the
  ``alerts`` table has no column for — the pattern, the grouping window, the
  last anomaly's time, whether the alert is a suppressed repeat, the budget
  cut-off in force when it opened, why it resolved.
* ``alert_deliveries`` (one row per alert, channel and notification, key
  ``(pipeline, alert_key, channel, notification)``): the outbox. ``status`` is
  ``pending`` until a channel acknowledged it (``delivered``) or gave up
  (``failed``: a permanent error, or ``retry.max_attempts`` reached).
  ``next_attempt_at`` (wall clock) is when a dispatcher may try it next; a
  dispatcher claims a row by pushing it a lease ahead, so a dispatcher killed
  mid-send leaves a row that becomes due again when the lease runs out.
* ``alert_mutes`` (one row per mute): what people said is normal — an entity
  (and pattern) whose anomalies open no alert until an event time; see
  :mod:`tocsin.alerting.mutes`.

:func:`ensure_tables` creates them in an existing store (``Store(url)`` creates
them itself when this module was imported before it).
"""

from __future__ import annotations

from sqlalchemy import Boolean, CheckConstraint, Column, Index, Integer, String, Table, Text, UniqueConstraint
from sqlalchemy.engine import Engine

from tocsin.store.tables import Double, Id, Json, _now, _one_of, create_tables, metadata

DELIVERY_STATUSES = ("pending", "delivered", "failed")
NOTIFICATIONS = ("open", "resolve")

alert_details = Table(
    "alert_details",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("pipeline", String(128), nullable=False),
    Column("alert_key", String(255), nullable=False),
    Column("pattern", String(128), nullable=False, comment="see tocsin.alerting.patterns"),
    Column("window_start", Double, nullable=False, comment="event time of the first anomaly"),
    Column("window_end", Double, nullable=False, comment="anomalies before this event time may join"),
    Column("last_event_time", Double, nullable=False),
    Column("suppressed", Boolean(create_constraint=False), nullable=False, default=False,
           comment="a repeat of a recent alert of the same entity and pattern: stored, not delivered"),
    Column("budget_cutoff", Double, nullable=True, comment="score needed to open an alert when this one opened"),
    Column("rule", Integer, nullable=True, comment="index of the severity rule that raised the severity"),
    Column("attributes", Json, nullable=False, default=dict, comment="fields of the event that opened the alert"),
    Column("channels", Json, nullable=False, default=list, comment="channels the alert was routed to"),
    Column("resolved_reason", String(32), nullable=True),
    Column("updated_at", Double, nullable=False, default=_now),
    UniqueConstraint("pipeline", "alert_key"),
)

alert_deliveries = Table(
    "alert_deliveries",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("pipeline", String(128), nullable=False),
    Column("alert_key", String(255), nullable=False),
    Column("channel", String(128), nullable=False),
    Column("notification", String(16), nullable=False, default="open"),
    Column("idempotency_key", String(512), nullable=False),
    Column("status", String(16), nullable=False, default="pending"),
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", Double, nullable=False, comment="wall clock; a claim pushes it a lease ahead"),
    Column("last_error", Text, nullable=True),
    Column("delivered_at", Double, nullable=True),
    Column("created_at", Double, nullable=False, default=_now),
    Column("updated_at", Double, nullable=False, default=_now),
    UniqueConstraint("pipeline", "alert_key", "channel", "notification"),
    CheckConstraint(_one_of("status", DELIVERY_STATUSES), name="status"),
    CheckConstraint(_one_of("notification", NOTIFICATIONS), name="notification"),
    Index(None, "status", "next_attempt_at"),
    Index(None, "pipeline", "alert_key"),
)

alert_mutes = Table(
    "alert_mutes",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("pipeline", String(128), nullable=False),
    Column("entity", String(255), nullable=False),
    Column("pattern", String(128), nullable=True, comment="null: every pattern of the entity"),
    Column("since", Double, nullable=False, comment="event time from which matching anomalies open no alert"),
    Column("until", Double, nullable=False, comment="event time at which the mute ends"),
    Column("alert_id", Integer, nullable=True, comment="the alert whose false-positive verdict set it"),
    Column("event_id", String(255), nullable=True, comment="the anomaly whose verdict set it"),
    Column("author", Text, nullable=True),
    Column("note", Text, nullable=True),
    Column("created_at", Double, nullable=False, default=_now),
    Column("lifted_at", Double, nullable=True, comment="wall clock when someone lifted it early"),
    Column("lifted_by", Text, nullable=True),
    Index(None, "pipeline", "until"),
    Index(None, "pipeline", "alert_id"),
)

ALERTING_TABLES = (alert_details, alert_deliveries, alert_mutes)
_created: set[str] = set()


def ensure_tables(engine: Engine) -> None:
    """Create the alerting tables in ``engine``'s database if missing (once per engine URL)."""
    key = f"{id(engine)}:{engine.url}"
    if key not in _created:
        create_tables(engine, tables=list(ALERTING_TABLES))
        _created.add(key)
