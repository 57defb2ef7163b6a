"""Incident-level quality of a backtest: what an on-call team reads, not per-reading accuracy.

For series use cases (hosts, services, sensors) one incident covers many readings and often many
entities, and a host gone silent has no reading at all; per-reading precision and recall miscount
all of that, and point-adjusted F1 (a whole labelled range counted as found when one reading in it
is flagged) rewards a detector that fires once per incident by luck. Given the incident table (each
``{kind, entity, hosts | entities, ips?, start, end}``, as ``tocsin simulate`` writes it to
``OUT.incidents.json``) this module reports, per incident kind:

* **caught / recall**: incidents with an anomaly (a scored event over the threshold, or a silence
  anomaly) on one of the incident's entities within ``[start - 60 s, start + catch_within]``;
* **detection delay**: from the start to the first such anomaly within ``[start - 60 s, end]``
  (or the catch window, if the incident is shorter): median and 90th percentile over the incidents
  detected at all (``detected``), negative when it fired in the minute before the recorded start;

and over all kinds:

* **incident precision**: the share of alerts (the backtest's own grouped alerts, suppressed repeats
  left out) that overlap an incident window ``[start - 2 min, end + 30 min]`` on one of its entities;
* **false alerts per 100 entities per day**: the alerts overlapping no incident window, per 100
  entities (distinct keys seen) and per day of the evaluated span;
* **VUS-PR** (:mod:`tocsin.engine.vus`) of the event scores against the event labels, each entity's
  readings a series of its own.

Only incidents starting, and alerts opening, inside the evaluated span count: from ``warmup_days``
after the first event (and never before the first scored event: the pipeline's own warm-up) to the
last event. Alerts of non-entities (drift alerts are about ``model``) are left out.

**Alerts grouped by another field** (``alerting.group_by``, e.g. ``ip``): such an alert is keyed by the
field's value (the attacker's IP) and lists the event entities it grouped (the accounts, its
``members``). It counts, and is about an incident, when its key or any of its members is one of the
incident's entities, or one of the incident's ``ips`` when the row lists them (the logins simulator
does). Only the first members an alert stored (at most 100) are known.

**Bucketed readings** (pipelines with ``aggregate:`` or ``quality:``; ``bucket`` is the bucket width,
``aggregate.every`` or ``quality.every``): a reading is timed at its bucket's start ``b`` and covers
``[b, b + bucket)``, and so does every anomaly of such a pipeline (a silence or schema-change anomaly is
timed on the readings' clock too). An anomaly at ``t`` catches an incident when ``[t, t + bucket)``
meets ``(start, start + catch_within]``: an incident is caught *within its first bucket* when the
reading of the bucket holding its start is anomalous (not the bucket before it: a whole bucket early is no catch), even
though that reading's time ``b`` is before the start. The detection delay of such an anomaly is counted
to its bucket's end ``t + bucket`` (the earliest the reading could be known), so it is never negative. An alert, from its first anomaly at ``t0`` to its last at ``t1``, covers ``[t0, t1 + bucket)``
and is about an incident when that meets the incident's window. The evaluated span ends at the last
reading's bucket end. With ``bucket`` 0 (events scored one by one) every figure is as without it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tocsin.engine.vus import vus_pr

DAY = 86_400.0
#: an anomaly this long before an incident's recorded start still catches it (clocks, ramps)
EARLY = 60.0
#: an alert overlapping [start - EXPLAIN_BEFORE, end + EXPLAIN_AFTER] of an incident on one of its
#: entities is about that incident (the lead-in, and the alert still open after it ends)
EXPLAIN_BEFORE = 120.0
EXPLAIN_AFTER = 1800.0
#: the largest VUS-PR buffer, in readings
MAX_VUS_BUFFER = 50


@dataclass(frozen=True)
class Alert:
    """One grouped alert: its entity, the event times of its first and last anomaly and, with
    ``alerting.group_by``, its members (the event entities it grouped, its entity being the field's value)."""

    entity: str
    start: float
    end: float
    members: tuple[str, ...] = ()

    def names(self) -> tuple[str, ...]:
        """What the alert is about: its entity and its members."""
        return (self.entity, *self.members)


def load_incidents(path: Path) -> list[dict[str, Any]]:
    """The incident table of ``path``: ``{"incidents": [...], ...}`` as ``tocsin simulate`` writes it,
    or a bare list; each incident needs ``kind``, ``start``, ``end`` and its entities (``hosts``,
    ``entities`` or at least ``entity``)."""
    data = json.loads(Path(path).read_text())
    table = data.get("incidents") if isinstance(data, dict) else data
    if not isinstance(table, list):
        raise ValueError(f"{path}: expected a list of incidents or an object with an 'incidents' list")
    for i, incident in enumerate(table):
        if not isinstance(incident, dict):
            raise ValueError(f"{path}: incident {i} is not an object")
        missing = {"kind", "start", "end"} - set(incident)
        if missing or not members(incident):
            raise ValueError(f"{path}: incident {i} lacks {sorted(missing) or 'its entities'}")
    return table


def members(incident: dict[str, Any]) -> list[str]:
    """The entities an incident affects (the event keys)."""
    for key in ("hosts", "entities"):
        if incident.get(key):
            return [str(e) for e in incident[key]]
    return [str(incident["entity"])] if incident.get("entity") is not None else []


def alert_names(incident: dict[str, Any]) -> list[str]:
    """What an alert about the incident may be keyed by: its entities and, when the row lists them, its
    ``ips`` (alerts grouped by the IP)."""
    return [*members(incident), *(str(ip) for ip in incident.get("ips") or ())]


class AnomalyTimes:
    """Every anomaly's event time, per entity, sorted: what catches incidents."""

    def __init__(self, entities: Iterable[str], times: Iterable[float]) -> None:
        entities, times = np.asarray(list(entities), dtype=object), np.asarray(list(times), dtype=np.float64)
        order = np.lexsort((times, entities.astype(str))) if len(times) else np.empty(0, np.int64)
        self.by_entity: dict[str, np.ndarray] = {}
        if len(order):
            entities, times = entities[order].astype(str), times[order]
            cuts = np.flatnonzero(entities[1:] != entities[:-1]) + 1
            for part_entities, part_times in zip(np.split(entities, cuts), np.split(times, cuts)):
                self.by_entity[str(part_entities[0])] = part_times

    def first(self, entities: Sequence[str], since: float, until: float, bucket: float = 0.0) -> float | None:
        """The earliest anomaly time of ``entities`` within [since, until], or None; with a ``bucket``
        width, the earliest anomaly at ``t`` whose bucket ``[t, t + bucket)`` meets [since, until]."""
        best = None
        for entity in entities:
            times = self.by_entity.get(entity)
            if times is None:
                continue
            i = int(np.searchsorted(times, since - bucket, side="right") if bucket > 0 else np.searchsorted(times, since, side="left"))
            if i < len(times) and times[i] <= until and (best is None or times[i] < best):
                best = float(times[i])
        return best


def _percentile(values: list[float], q: float) -> float | None:
    return round(float(np.percentile(values, q)), 1) if values else None


def evaluate(
    incidents: list[dict[str, Any]],
    anomalies: AnomalyTimes,
    alerts: Sequence[Alert],
    table: dict[str, np.ndarray],
    entities: set[str],
    first_time: float,
    last_time: float,
    catch_within: float = 300.0,
    warmup_days: float = 0.0,
    bucket: float = 0.0,
) -> dict[str, Any]:
    """The incident-level figures (see the module docstring). ``table``: the backtest's scored rows
    (entity, event_time, score, label); ``entities``: every key seen; ``first_time``/``last_time``:
    the data's first and last event time; ``bucket``: the readings' bucket width (0: events, not
    readings), each anomaly and alert covering that much after its time."""
    bucket = max(float(bucket), 0.0)
    scored_from = float(table["event_time"].min()) if len(table["event_time"]) else last_time
    since = max(first_time + warmup_days * DAY, scored_from)
    last_time = last_time + bucket  # the last reading covers its bucket
    days = max(last_time - since, 0.0) / DAY

    per_kind: dict[str, dict[str, Any]] = {}
    delays: dict[str, list[float]] = {}
    for incident in sorted(incidents, key=lambda x: float(x["start"])):
        start, end = float(incident["start"]), float(incident["end"])
        if not since <= start <= last_time:
            continue
        kind = str(incident["kind"])
        figures = per_kind.setdefault(kind, {"incidents": 0, "caught": 0, "detected": 0})
        affected = members(incident)
        figures["incidents"] += 1
        early = EARLY if bucket == 0 else -0.001  # a bucketed reading counts from the bucket holding the start on
        figures["caught"] += anomalies.first(affected, start - early, start + catch_within, bucket) is not None
        first = anomalies.first(affected, start - early, max(end, start + catch_within), bucket)
        if first is not None:
            figures["detected"] += 1
            delays.setdefault(kind, []).append(first + bucket - start)  # a reading is known at its bucket's end
    report_kinds: dict[str, dict[str, Any]] = {}
    for kind in sorted(per_kind):
        figures = per_kind[kind]
        report_kinds[kind] = {
            "incidents": figures["incidents"], "caught": figures["caught"],
            "recall": round(figures["caught"] / figures["incidents"], 4),
            "delay_median_s": _percentile(delays.get(kind, []), 50), "delay_p90_s": _percentile(delays.get(kind, []), 90),
            "detected": figures["detected"],
        }
    total = sum(f["incidents"] for f in per_kind.values())
    caught = sum(f["caught"] for f in per_kind.values())

    windows: dict[str, list[tuple[float, float]]] = {}
    for incident in incidents:
        window = (float(incident["start"]) - EXPLAIN_BEFORE, float(incident["end"]) + EXPLAIN_AFTER)
        for name in dict.fromkeys(alert_names(incident)):
            windows.setdefault(name, []).append(window)

    def explained(alert: Alert) -> bool:
        return any(alert.start <= hi and (alert.end + bucket > lo if bucket > 0 else alert.end >= lo)
                   for name in alert.names() for lo, hi in windows.get(name, ()))

    counted = [a for a in alerts if (a.entity in entities or any(m in entities for m in a.members))
               and since <= a.start <= last_time]
    false = [a for a in counted if not explained(a)]

    vus, buffer, label_rate = _vus(table, since, catch_within)
    return {
        "incidents": report_kinds,
        "incident_recall": round(caught / total, 4) if total else None,
        "incident_precision": round(1.0 - len(false) / len(counted), 4) if counted else None,
        "false_alerts_per_100_entities_per_day": round(100.0 * len(false) / len(entities) / days, 3) if entities and days > 0 else None,
        "vus_pr": None if vus is None else round(vus, 4),
        "incident_scope": {
            "from": since, "to": last_time, "days": round(days, 3), "entities": len(entities),
            "catch_within_s": catch_within, "bucket_s": bucket, "alerts": len(counted), "false_alerts": len(false),
            "vus_pr_max_buffer": buffer, "label_rate": None if label_rate is None else round(label_rate, 5),
        },
    }


def _vus(table: dict[str, np.ndarray], since: float, catch_within: float) -> tuple[float | None, int | None, float | None]:
    """VUS-PR of the labelled scored rows from ``since``, each entity its own series in time order;
    the largest buffer spans ``catch_within`` on each side (in the entities' median reporting interval)."""
    keep = (table["label"] >= 0) & (table["event_time"] >= since)
    if not keep.any():
        return None, None, None
    entity, times = table["entity"][keep].astype(str), table["event_time"][keep]
    order = np.lexsort((times, entity))
    entity, times = entity[order], times[order]
    labels, scores = table["label"][keep][order], table["score"][keep][order]
    same = entity[1:] == entity[:-1]
    gaps = np.diff(times)[same]
    gaps = gaps[gaps > 0]
    interval = float(np.median(gaps)) if len(gaps) else catch_within
    buffer = int(min(MAX_VUS_BUFFER, 2 * max(1, round(catch_within / interval))))
    return vus_pr(labels, scores, buffer, groups=entity), buffer, float((labels > 0).mean())
