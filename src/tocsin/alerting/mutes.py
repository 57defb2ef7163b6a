"""Mutes: what people said is normal stops alerting them, for a while, and says so.

A false-positive verdict on an alert (or anomaly) may carry a *scope*: this
entity and this pattern (or every pattern of the entity) for N days. Later
anomalies that match are still scored, stored and counted — nothing is lost and
the verdict can be lifted — but they open no alert and join none, so the same
false alarm does not page anyone again. The muted alert shows who muted what and
until when (:func:`mutes_for_alerts`).

Clock: a mute is an event-time range, ``[since, until)``, like everything that
decides alerts (grouping never reads the wall clock). ``since`` is the muted
alert's first anomaly; ``until`` counts N days from the later of *now* and the
alert's last anomaly, so a mute set on a live stream lasts N days from the
verdict, and one set on a replayed stream's alert covers the N days after it.

Where it fails: a mute is matched on the entity and the anomaly's explanation
families (:mod:`tocsin.alerting.patterns`), so an incident of the same entity
whose explanation starts with another family still alerts under an
``entity_pattern`` scope (that is the point of the narrow scope). Drivers read
the mutes from the store about once a second (:class:`MuteRefresher`), so
anomalies in the first second after a verdict may still alert. Mutes are not
part of a checkpoint: a replay after a verdict applies the mutes in force when
it runs.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update

from tocsin.alerting.tables import alert_mutes, ensure_tables
from tocsin.store.sql import Store

log = logging.getLogger(__name__)

SCOPES = ("entity_pattern", "entity")
DAY = 86_400.0


@dataclass(frozen=True)
class Mute:
    """One mute: anomalies of ``entity`` (with ``pattern`` among their families; any when None) whose
    event time is in ``[since, until)`` open no alert."""

    id: int
    entity: str
    pattern: str | None
    since: float
    until: float
    author: str | None = None

    def matches(self, entity: str, families: Sequence[str], t: float) -> bool:
        return entity == self.entity and self.since <= t < self.until and (self.pattern is None or self.pattern in families)


class MuteBook:
    """The mutes in force, by entity: what the alert manager asks for every anomaly (a dict lookup when
    the entity has none, so an empty book costs nothing).

    >>> book = MuteBook([Mute(1, "card7", "rate", since=0.0, until=100.0)])
    >>> book.match("card7", ["rate", "amount"], 50.0).id, book.match("card7", ["amount"], 50.0)
    (1, None)
    >>> book.match("card7", ["rate"], 100.0) is None, book.match("card8", ["rate"], 50.0) is None
    (True, True)
    """

    def __init__(self, mutes: Sequence[Mute] = ()) -> None:
        self.by_entity: dict[str, list[Mute]] = {}
        for mute in mutes:
            self.by_entity.setdefault(mute.entity, []).append(mute)
        #: anomalies that matched a mute since this process started
        self.matched = 0

    def match(self, entity: str, families: Sequence[str], t: float) -> Mute | None:
        for mute in self.by_entity.get(entity, ()):
            if mute.matches(entity, families, t):
                return mute
        return None

    def replace(self, mutes: Sequence[Mute]) -> None:
        fresh = MuteBook(mutes)
        self.by_entity = fresh.by_entity

    def __len__(self) -> int:
        return sum(len(v) for v in self.by_entity.values())


# --- the store's side ---------------------------------------------------------------


def add_mute(store: Store, pipeline: str, *, entity: str, pattern: str | None, since: float, until: float,
             author: str | None, note: str | None = None, alert_id: int | None = None,
             event_id: str | None = None, created_at: float | None = None) -> dict[str, Any]:
    """Record a mute; returns its row."""
    ensure_tables(store.engine)
    row = {"pipeline": pipeline, "entity": entity, "pattern": pattern, "since": float(since), "until": float(until),
           "alert_id": alert_id, "event_id": event_id, "author": author, "note": note,
           "created_at": time.time() if created_at is None else float(created_at)}
    with store.engine.begin() as conn:
        row["id"] = int(conn.execute(alert_mutes.insert().values(**row)).inserted_primary_key[0])
    return row


def mute_rows(store: Store, pipeline: str, *, not_lifted: bool = False, alert_ids: Sequence[int] | None = None,
              limit: int = 10_000) -> list[dict[str, Any]]:
    """Mutes newest first: only those nobody lifted with ``not_lifted``; those set on ``alert_ids`` when
    given (lifted ones included: an alert shows its history). Whether a mute has ended is a matter of
    event time, which only a stream knows, so ended ones are listed too (newest ``limit``)."""
    ensure_tables(store.engine)
    m = alert_mutes
    statement = select(m).where(m.c.pipeline == pipeline)
    if not_lifted:
        statement = statement.where(m.c.lifted_at.is_(None))
    if alert_ids is not None:
        statement = statement.where(m.c.alert_id.in_([int(i) for i in alert_ids]))
    return store.fetch(statement.order_by(m.c.id.desc()).limit(limit))


def lift_mute(store: Store, pipeline: str, mute_id: int, by: str | None) -> bool:
    """End a mute now (it stays on record); False when there is no such mute still in force."""
    ensure_tables(store.engine)
    m = alert_mutes
    with store.engine.begin() as conn:
        result = conn.execute(update(m).where(m.c.pipeline == pipeline, m.c.id == int(mute_id), m.c.lifted_at.is_(None))
                              .values(lifted_at=time.time(), lifted_by=by))
    return result.rowcount > 0


def mutes_for_alerts(store: Store, pipeline: str, alert_ids: Sequence[int]) -> dict[int, list[dict[str, Any]]]:
    """alert id -> the mutes its verdicts set, newest first."""
    out: dict[int, list[dict[str, Any]]] = {}
    if alert_ids:
        for row in mute_rows(store, pipeline, alert_ids=alert_ids):
            out.setdefault(int(row["alert_id"]), []).append(row)
    return out


class MuteRefresher:
    """Keeps a :class:`MuteBook` in step with the store, reading it at most every ``interval`` seconds
    (one indexed query). A failing read keeps the mutes it had and logs once per failure streak: a
    database hiccup must not stop scoring, and must not un-mute everything either."""

    def __init__(self, store: Store, pipeline: str, book: MuteBook, interval: float = 1.0) -> None:
        self.store, self.pipeline, self.book, self.interval = store, pipeline, book, interval
        self._read_at = -float("inf")
        self._failing = False

    def refresh(self, *, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._read_at < self.interval:
            return
        self._read_at = now
        try:
            # until is event time: every mute nobody lifted is read (a replay of old events needs old mutes)
            rows = mute_rows(self.store, self.pipeline, not_lifted=True)
        except Exception as error:  # noqa: BLE001 - any database error: keep the mutes in force
            if not self._failing:
                log.warning("could not read mutes, keeping the %d in force: %s", len(self.book), type(error).__name__)
            self._failing = True
            return
        self._failing = False
        self.book.replace([Mute(int(r["id"]), r["entity"], r["pattern"], float(r["since"]), float(r["until"]), r["author"])
                           for r in rows])
